// What goes where when a model spans several GPUs. A split follows llama.cpp's
// layer split (src/llama-model.cpp, llama_model::load_tensors) so that a model
// split here sits on the devices where llama.cpp would put it:
//
//   - the proportions are normalised to cumulative fractions, in float32
//     (split 3,1 → 0.75, 1.0);
//   - layer il (0 ≤ il < n_layer) goes to the first device whose cumulative
//     fraction is above il / (n_layer + 1) (std::upper_bound), and the output
//     layer counts as layer n_layer; a device with proportion 0 gets nothing;
//   - token_embd (and the other input tensors) go with layer 0, output_norm and
//     output with the output layer (llama.cpp keeps the input on the CPU; here
//     every tensor is on a GPU, so it joins the first layer's device);
//   - tensors every layer reads (rope_freqs, the long/short RoPE factors) get a
//     copy on each device that holds layers, as llama.cpp duplicates them per layer;
//   - a tied head on another device than token_embd is a real copy of
//     token_embd's bytes there (llama.cpp loads it twice too); on the same device
//     it stays an alias.
// Replicas put the whole model, laid out identically, on every device.

import { layerOf } from "../arch/index.ts";

export type Placement =
  | { readonly kind: "single"; readonly device: number }
  /** `split`: one proportion per device, each ≥ 0, not all 0 (resolved: free VRAM when the user gave none). */
  | { readonly kind: "split"; readonly devices: readonly number[]; readonly split: readonly number[] }
  | { readonly kind: "replicas"; readonly devices: readonly number[] };

export function placementDevices(p: Placement): readonly number[] {
  return p.kind === "single" ? [p.device] : p.devices;
}

/**
 * llama.cpp's assignment: for il = 0 … n_layer, the index (into the split) of the
 * device that holds layer il; entry n_layer is the output layer's device.
 */
export function layerAssignment(nLayer: number, split: readonly number[]): number[] {
  const f = Math.fround;
  let sum = f(0);
  const cumulative = split.map((x) => (sum = f(sum + f(x))));
  const points = cumulative.map((c) => f(c / sum));
  const out: number[] = [];
  for (let il = 0; il <= nLayer; il++) {
    const fraction = f(il / (nLayer + 1));
    const d = points.findIndex((p) => p > fraction); // std::upper_bound
    out.push(d < 0 ? split.length - 1 : d);
  }
  return out;
}

/** Tensors every layer reads: a copy on each device that holds layers. */
export function isPerDeviceCopy(name: string): boolean {
  return name === "rope_freqs.weight" || name.startsWith("rope_factors_");
}

/**
 * Where each tensor of a split goes: tensor name → indices (into the split's
 * devices) of the devices that hold it. `nLayer` is the model's block count.
 */
export function splitTensors(names: readonly string[], nLayer: number, assignment: readonly number[]): Map<string, number[]> {
  const withLayers = [...new Set(assignment.slice(0, nLayer))].sort((a, b) => a - b);
  const first = assignment[0]!;
  const output = assignment[nLayer]!;
  const where = new Map<string, number[]>();
  for (const name of names) {
    const layer = layerOf(name);
    if (typeof layer === "number") where.set(name, [assignment[Math.min(layer, nLayer)] ?? output]);
    else if (layer === "output") where.set(name, [output]);
    else if (isPerDeviceCopy(name)) where.set(name, withLayers.length > 0 ? withLayers : [first]);
    else where.set(name, [first]); // token_embd, its norm, position embeddings, anything else
  }
  return where;
}

/** The block count to split by: the registry's, else one past the highest blk.N in the names. */
export function layerCount(names: readonly string[], configLayers: number | undefined): number {
  if (configLayers !== undefined) return configLayers;
  let n = 0;
  for (const name of names) {
    const layer = layerOf(name);
    if (typeof layer === "number") n = Math.max(n, layer + 1);
  }
  return n;
}
