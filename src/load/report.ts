// What a load reports beside the model: what was planned, where the bytes
// went, the VRAM around it, and how long each phase took.

import type { ModelCheck } from "../arch/index.ts";
import type { GgufFile } from "../gguf/index.ts";
import type { LoadPlan } from "./plan.ts";
import type { ReplicaRoute } from "./replicas.ts";

export interface LoadTimings {
  /** Waiting for the CUDA context and the rings, after parsing (0 when fully overlapped). */
  cudaWait: number;
  /** Context creation and ring registration in the slowest worker (overlapped with parsing). */
  cudaInit: number;
  parse: number;
  plan: number;
  allocate: number;
  upload: number;
  /** Replicas by the peer route: the exchange of shares between devices, after the upload. */
  peer: number;
  verify: number;
  total: number;
}

/** One device's VRAM around a load (cudaMemGetInfo). */
export interface DeviceVram {
  readonly device: number;
  readonly freeBefore: number;
  readonly freeAfter: number;
  readonly totalVram: number;
}

export interface LoadReport {
  readonly path: string;
  readonly gguf: GgufFile;
  readonly check: ModelCheck;
  readonly plan: LoadPlan;
  /** The first device (the only one unless the model spans several). */
  readonly device: number;
  /** Upload workers per device. */
  readonly workers: number;
  /** How the bytes reached the GPUs: over each device's PCIe link ("pcie"), or for replicas "peer" or "host". */
  readonly route: "pcie" | ReplicaRoute;
  /** cudaMemGetInfo free bytes just before allocating and just after the upload, every device together. */
  readonly freeBefore: number;
  readonly freeAfter: number;
  readonly totalVram: number;
  /** The same, device by device. */
  readonly vram: readonly DeviceVram[];
  readonly timings: LoadTimings;
}
