// CUDA devices: how many, what they are, how much memory is free.

import { CudaError } from "./errors.ts";
import { native } from "./native.ts";
import { call } from "./runtime.ts";

export interface DeviceInfo {
  readonly index: number;
  readonly name: string;
  /** e.g. "9.0" for an H100. */
  readonly computeCapability: string;
  readonly multiprocessors: number;
  /** e.g. "0000:1b:00.0". */
  readonly pciBusId: string;
  readonly totalBytes: number;
  readonly freeBytes: number;
}

const INFO_BYTES = 296; // sizeof(gv_device_info)

export function deviceCount(): number {
  const out = new Int32Array(1);
  call(native().gv_device_count(out));
  return out[0]!;
}

export function deviceInfo(index: number): DeviceInfo {
  const buf = new Uint8Array(INFO_BYTES);
  call(native().gv_device_info_get(index, buf));
  const v = new DataView(buf.buffer);
  const nameEnd = buf.indexOf(0);
  const int = (i: number) => v.getInt32(256 + 4 * i, true);
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  return {
    index,
    name: new TextDecoder().decode(buf.subarray(0, nameEnd < 0 ? 256 : Math.min(nameEnd, 256))),
    computeCapability: `${int(0)}.${int(1)}`,
    multiprocessors: int(2),
    pciBusId: `${hex(int(5), 4)}:${hex(int(3), 2)}:${hex(int(4), 2)}.0`,
    totalBytes: Number(v.getBigUint64(280, true)),
    freeBytes: Number(v.getBigUint64(288, true)),
  };
}

export function listDevices(): DeviceInfo[] {
  return Array.from({ length: deviceCount() }, (_, i) => deviceInfo(i));
}

export function memInfo(index: number): { freeBytes: number; totalBytes: number } {
  const free = new BigUint64Array(1);
  const total = new BigUint64Array(1);
  call(native().gv_mem_info(index, free, total));
  return { freeBytes: Number(free[0]!), totalBytes: Number(total[0]!) };
}

/**
 * A device in use: its primary context is created on open (300+ ms on an H100,
 * which is why callers open it early, in a Worker, while they parse).
 */
export class Device {
  #index: number | null;

  private constructor(index: number) {
    this.#index = index;
  }

  /** Checks the index and creates the device's context. */
  static open(index: number): Device {
    if (!Number.isInteger(index) || index < 0) throw new CudaError("BAD_DEVICE", 0, 0, `device ${index} is not a device index`);
    call(native().gv_device_init(index));
    return new Device(index);
  }

  get index(): number {
    return this.#live();
  }

  info(): DeviceInfo {
    return deviceInfo(this.#live());
  }

  memInfo(): { freeBytes: number; totalBytes: number } {
    return memInfo(this.#live());
  }

  /** The primary context stays for the process; closing only retires the handle. */
  close(): void {
    this.#index = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #live(): number {
    if (this.#index === null) throw new CudaError("CLOSED", 0, 0, "this Device was closed");
    return this.#index;
  }
}
