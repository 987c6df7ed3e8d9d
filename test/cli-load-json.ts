// The shape of `bun run load --json`, strictly (an unknown field fails), for
// the tests of one GPU (cli-load.test.ts) and of several (cli-multi.test.ts).

import { z } from "zod";

const Device = z.object({ index: z.number(), name: z.string(), computeCapability: z.string(), totalBytes: z.number(), freeBytes: z.number() }).strict();
const Layers = z.tuple([z.number(), z.number()]).nullable();

export const LoadJsonSchema = z.object({
  model: z.object({
    path: z.string(), fileSize: z.number(), architecture: z.string().nullable(), config: z.record(z.string(), z.unknown()).nullable(), tensors: z.number(), tiedHead: z.boolean(),
    checked: z.boolean(), problems: z.array(z.string()), shards: z.array(z.object({ path: z.string(), fileSize: z.number(), tensors: z.number() }).strict()),
  }).strict(),
  device: Device.nullable(),
  devices: z.array(Device).optional(),
  plan: z.object({
    kind: z.enum(["single", "split", "replicas"]),
    split: z.array(z.number()).nullable(),
    devices: z.array(z.object({ device: z.number(), layers: Layers, tensors: z.number(), arenaBytes: z.number() }).strict()),
    arenaBytes: z.number(),
    dataBytes: z.number(),
    paddingBytes: z.number(),
    byType: z.array(z.object({ type: z.string(), count: z.number(), bytes: z.number() }).strict()),
    tensors: z.array(z.object({ name: z.string(), type: z.string(), shape: z.array(z.number()), bytes: z.number(), shard: z.number(), fileOffset: z.number(), device: z.number(), offset: z.number(), aliasOf: z.string().optional(), copyOf: z.string().optional() }).strict()),
  }).strict(),
  dryRun: z.boolean(),
  route: z.enum(["pcie", "peer", "host"]).nullable(),
  ledger: z.object({ totalBytes: z.number(), dataBytes: z.number(), paddingBytes: z.number() }).strict().nullable(),
  vram: z.object({
    ledgerBytes: z.number(), cudaMemGetInfoDropBytes: z.number(), nvidiaSmiBytes: z.number().nullable(), freeBytesAfter: z.number(), totalBytes: z.number(),
    devices: z.array(z.object({ device: z.number(), ledgerBytes: z.number(), cudaMemGetInfoDropBytes: z.number(), nvidiaSmiBytes: z.number().nullable(), freeBytesAfter: z.number(), totalBytes: z.number() }).strict()),
  }).strict().nullable(),
  timings: z.object({ cudaWait: z.number(), cudaInit: z.number(), parse: z.number(), plan: z.number(), allocate: z.number(), upload: z.number(), peer: z.number(), verify: z.number(), total: z.number() }).strict().nullable(),
  verified: z.boolean(),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string() }).strict().optional(),
}).strict();

export type LoadJsonDoc = z.infer<typeof LoadJsonSchema>;
