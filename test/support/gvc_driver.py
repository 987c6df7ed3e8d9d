#!/usr/bin/env python3
"""Drives libgguf_vram_client through ctypes, as a C program would, for the
tests: argv[1] is the library, argv[2] a JSON list of steps run in order; each
step's result is printed as one JSON line (status, last error, error code and
what the call returned). Never raises on a status: the tests judge them."""

import ctypes
import json
import os
import sys

from ctypes import POINTER, c_char_p, c_int, c_size_t, c_uint64, c_void_p

lib = ctypes.CDLL(sys.argv[1])
lib.gvc_connect.argtypes = [c_char_p, POINTER(c_void_p)]
lib.gvc_close.argtypes = [c_void_p]
lib.gvc_close.restype = None
lib.gvc_load.argtypes = [c_void_p, c_char_p, c_int, c_int, c_char_p, c_size_t]
lib.gvc_request.argtypes = [c_void_p, c_char_p, POINTER(c_void_p)]
lib.gvc_free.argtypes = [c_void_p]
lib.gvc_free.restype = None
lib.gvc_attach.argtypes = [c_void_p, c_char_p, POINTER(c_void_p)]
lib.gvc_detach.argtypes = [c_void_p]
lib.gvc_default_socket.argtypes = [c_char_p, c_size_t]
lib.gvc_last_error.restype = c_char_p
lib.gvc_last_error_code.restype = c_char_p
lib.gvc_tensor_count.argtypes = [c_void_p]
lib.gvc_device_at.argtypes = [c_void_p, c_int, POINTER(c_int), POINTER(c_void_p), POINTER(c_uint64)]


def open_descriptors():
    # The sockets and files the client opens or receives. The CUDA driver, once asked anything (on a
    # machine with a driver, even with no GPU visible), keeps device files, event descriptors and
    # pipes of its own open for the process's life: those are not the client's to close.
    def ours(fd):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return not target.startswith(("/dev/", "anon_inode:", "pipe:"))
    return sum(1 for fd in os.listdir("/proc/self/fd") if ours(fd))


def outcome(rc, **extra):
    return {"rc": rc, "error": lib.gvc_last_error().decode(), "code": lib.gvc_last_error_code().decode(), **extra}


conn = c_void_p()
attachment = c_void_p()


def run(step):
    call = step["call"]
    if call == "connect":
        socket = step.get("socket")
        return outcome(lib.gvc_connect(socket.encode() if socket is not None else None, ctypes.byref(conn)))
    if call == "close":
        lib.gvc_close(conn)
        conn.value = None
        return {"rc": 0}
    if call == "load":
        id_out = ctypes.create_string_buffer(step.get("id_bytes", 64))
        rc = lib.gvc_load(conn, step["path"].encode(), step.get("device", -1), step.get("verify", 0), id_out, len(id_out))
        return outcome(rc, id=id_out.value.decode())
    if call == "request":
        reply = c_void_p()
        rc = lib.gvc_request(conn, step["json"].encode(), ctypes.byref(reply))
        text = ctypes.string_at(reply).decode() if reply.value else None
        lib.gvc_free(reply)
        return outcome(rc, reply=text)
    if call == "attach":
        rc = lib.gvc_attach(conn, step["model"].encode(), ctypes.byref(attachment))
        return outcome(rc, attached=bool(attachment.value))
    if call == "detach":
        rc = lib.gvc_detach(attachment)
        attachment.value = None
        return outcome(rc)
    if call == "default_socket":
        buf = ctypes.create_string_buffer(step.get("bytes", 512))
        rc = lib.gvc_default_socket(buf, len(buf))
        return outcome(rc, path=buf.value.decode())
    if call == "descriptors":
        return {"rc": 0, "open": open_descriptors()}
    if call == "attach_many":
        # the same attach again and again (the server varies its answer): every status seen, and no crash
        seen = {}
        for _ in range(step["times"]):
            rc = lib.gvc_attach(conn, step["model"].encode(), ctypes.byref(attachment))
            seen[rc] = seen.get(rc, 0) + 1
            if attachment.value:
                lib.gvc_detach(attachment)
                attachment.value = None
        return {"rc": 0, "seen": {str(k): v for k, v in seen.items()}}
    raise SystemExit(f"unknown step {call}")


for step in json.loads(sys.argv[2]):
    if "env" in step:
        for key, value in step["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if "cwd" in step:
        os.chdir(step["cwd"])
    print(json.dumps({"call": step["call"], **run(step)}), flush=True)
