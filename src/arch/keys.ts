// Reading a model's hyper-parameters from GGUF metadata as llama.cpp does:
// each key has exactly one GGUF type (a count is a u32, a float an f32; there
// is no widening), a required key that is absent is refused by name, and a
// per-layer key may be a scalar or an array of one value per layer. Problems
// are collected, not thrown, so `inspect` can show them all at once.

import { shortestF32, type GgufFile } from "../gguf/index.ts";
import type { ModelProblem } from "./problems.ts";

export class KeyReader {
  constructor(
    private readonly gguf: Pick<GgufFile, "get">,
    readonly arch: string,
    readonly problems: ModelProblem[],
  ) {}

  /** `<arch>.<name>`. */
  key(name: string): string {
    return `${this.arch}.${name}`;
  }

  u32(name: string, required = false): number | undefined {
    const v = this.present(name, required);
    if (!v) return undefined;
    if (v.type === "u32") return v.value;
    return this.wrongType(name, v.type, "u32");
  }

  f32(name: string, required = false): number | undefined {
    const v = this.present(name, required);
    if (!v) return undefined;
    // f32 keys as written (1e-6), not as widened (9.999999974752427e-7).
    if (v.type === "f32") return shortestF32(v.value);
    return this.wrongType(name, v.type, "f32");
  }

  bool(name: string, required = false): boolean | undefined {
    const v = this.present(name, required);
    if (!v) return undefined;
    if (v.type === "bool") return v.value;
    return this.wrongType(name, v.type, "bool");
  }

  string(name: string, required = false): string | undefined {
    const v = this.present(name, required);
    if (!v) return undefined;
    if (v.type === "string") return v.value;
    return this.wrongType(name, v.type, "string");
  }

  /**
   * A per-layer count: a u32 for every layer, or an array of `layers` u32/i32
   * values. llama.cpp builds every layer's tensors from layer 0's value, so that
   * is what is returned; a layer whose tensors differ then fails its shape.
   */
  perLayer(name: string, layers: number | undefined, required = false): number | undefined {
    const v = this.present(name, required);
    if (!v) return undefined;
    if (v.type === "u32") return v.value;
    if (v.type !== "array") return this.wrongType(name, v.type, "u32 (or an array of one per layer)");
    const key = this.key(name);
    if (v.itemType !== "u32" && v.itemType !== "i32") {
      this.problems.push({ code: "BAD_KEY", key, message: `${key} is an array of ${v.itemType}; llama.cpp reads it as u32 or i32 values, one per layer` });
      return undefined;
    }
    if (layers !== undefined && v.length !== layers) {
      this.problems.push({ code: "BAD_KEY", key, message: `${key} has ${v.length} values; block_count is ${layers}, one value per layer` });
      return undefined;
    }
    const first = v.items[0];
    if (first === undefined || first < 0) {
      this.problems.push({ code: "BAD_KEY", key, message: `${key} holds ${first ?? "no value"}; expected a count` });
      return undefined;
    }
    return first;
  }

  private present(name: string, required: boolean) {
    const key = this.key(name);
    const v = this.gguf.get(key);
    if (!v && required) this.problems.push({ code: "MISSING_KEY", key, message: `the metadata has no ${key}, which every ${this.arch} model needs` });
    return v;
  }

  private wrongType(name: string, actual: string, expected: string): undefined {
    const key = this.key(name);
    this.problems.push({ code: "BAD_KEY", key, message: `${key} is ${actual === "array" ? "an array" : `a ${actual}`}; llama.cpp reads it only as ${expected === "u32" || expected === "f32" ? `a ${expected}` : expected}` });
    return undefined;
  }
}
