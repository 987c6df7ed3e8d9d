// The registry: every architecture gguf-vram checks, by general.architecture.

import { DEEPSEEK2 } from "./deepseek2.ts";
import { GEMMA2, GEMMA3 } from "./gemma.ts";
import { GPT_OSS } from "./gpt-oss.ts";
import { GRANITE, LLAMA } from "./llama.ts";
import { OLMO2 } from "./olmo2.ts";
import { PHI3 } from "./phi3.ts";
import { QWEN2, QWEN2MOE, QWEN3, QWEN3MOE } from "./qwen.ts";
import type { ArchFamily } from "./common.ts";

export type { ArchFamily } from "./common.ts";

export const FAMILY_LIST: readonly ArchFamily[] = [LLAMA, QWEN2, QWEN3, QWEN2MOE, QWEN3MOE, GEMMA2, GEMMA3, PHI3, DEEPSEEK2, GPT_OSS, GRANITE, OLMO2];

/** general.architecture → its family. */
export const FAMILIES: ReadonlyMap<string, ArchFamily> = new Map(FAMILY_LIST.flatMap((f) => f.names.map((n) => [n, f] as const)));
