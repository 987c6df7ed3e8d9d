// The library's entry points: load() for one model with workers of its own,
// and the Loader, a pool of workers kept across loads (servers, benchmarks).

import { nativePath, openCuda } from "../cuda/index.ts";
import { toLoadError } from "./errors.ts";
import { runLoad } from "./load-pipeline.ts";
import type { Model } from "./model.ts";
import { checkPath, type ModelFile } from "./model-file.ts";
import { defaultTuning, loaderLoadOptions, requestedDevices, type LoaderLoadOptions, type LoaderOptions, type LoadOptions } from "./options.ts";
import { UploadPool, type PoolOptions } from "./pool.ts";
import type { LoadReport } from "./report.ts";
import { LoadStop } from "./stop.ts";
import { verifyModel, type VerifyReport } from "./verify.ts";

/** Load a GGUF model into VRAM and return the model handle (close it to free the VRAM). */
export async function load(source: string | ModelFile, options: LoadOptions = {}): Promise<Model> {
  return (await loadModel(source, options)).model;
}

/**
 * Load, and report what was done and how long it took. `source` is a path, or a
 * ModelFile already opened (and parsed) by the caller, who keeps it open and
 * closes it; then the header is not parsed again.
 */
export async function loadModel(source: string | ModelFile, options: LoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
  if (typeof source === "string") checkPath(source); // a wrong path fails before any GPU work starts
  requestedDevices(options); // and so does a contradictory placement
  const pool = await startPool(options);
  try {
    return await runLoad(pool, source, options);
  } finally {
    await pool.close();
  }
}

/**
 * A pool kept across loads: the context, workers and pinned rings are set up
 * once, so each load pays only for parsing and the upload (benchmarks, servers).
 * Every call may be made concurrently: any number of loads may run at once
 * (their uploads share the workers, each worker taking them in the order they
 * were asked for, and every load keeps its own cursor, progress and
 * cancellation), and close() stops those in flight.
 */
export class Loader {
  private constructor(
    private readonly pool: UploadPool,
    /** Defaults for every load: placement, verify, unchecked, shareable. */
    readonly defaults: LoaderOptions,
  ) {}

  /**
   * Workers for `options.device` (default 0), or for every device in `devices`
   * or `replicas`: its loads may then use any of them. The options are also the
   * defaults of its loads (a load that names no placement goes where they say).
   */
  static async open(options: LoaderOptions = {}): Promise<Loader> {
    requestedDevices(options);
    const pool = await startPool(options);
    await pool.ready;
    try {
      await pool.requireWorkers(pool.options.devices);
    } catch (e) {
      await pool.close().catch(() => {});
      throw toLoadError(e);
    }
    return new Loader(pool, { ...options });
  }

  /**
   * Load onto this loader's devices: by default where its options said (one
   * device, a split across all of them, or replicas); `device`, `devices` (with
   * `split`) or `replicas` choose among them. Upload tuning is the Loader's:
   * giving it here is BAD_OPTION.
   */
  load(source: string | ModelFile, options: LoaderLoadOptions = {}): Promise<{ model: Model; report: LoadReport }> {
    try {
      return runLoad(this.pool, source, loaderLoadOptions(this.defaults, options));
    } catch (e) {
      return Promise.reject(toLoadError(e));
    }
  }

  /** Check a loaded model against its files again, with this loader's workers reading in parallel. */
  async verify(model: Model, options: { signal?: AbortSignal } = {}): Promise<VerifyReport> {
    using stop = new LoadStop(options.signal);
    try {
      return await verifyModel(model, this.pool.workers > 0 ? this.pool : null, stop);
    } catch (e) {
      throw stop.explain(e, model.source.path);
    }
  }

  /** The devices this loader's workers serve. */
  get devices(): readonly number[] {
    return this.pool.options.devices;
  }

  /** Stops the loads in flight, frees every ring and ends the workers. */
  close(): Promise<void> {
    return this.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The loader's worker pool, for tests that kill a worker mid-upload. Not part of the library's API. */
export function poolOf(loader: Loader): UploadPool {
  return (loader as unknown as { pool: UploadPool }).pool;
}

async function startPool(options: LoadOptions | LoaderOptions): Promise<UploadPool> {
  const devices = requestedDevices(options) ?? [0];
  try {
    await openCuda();
  } catch (e) {
    throw toLoadError(e);
  }
  const tuning: PoolOptions = { libraryPath: nativePath()!, devices, ...defaultTuning(options, devices.length) };
  return UploadPool.start(tuning);
}
