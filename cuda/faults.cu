/*
 * faults.cu — the live counters (what the library holds, across all threads)
 * and fault injection for tests.
 *
 * Each fault kind is an atomic countdown: gv_fault_inject(kind, k) stores k, and
 * every gv_fault_hit(kind) takes one off while it is positive; the call that
 * takes it from 1 to 0 fails. A compare-and-swap loop makes that exactly one
 * call, however many threads race; each kind counts the faults it fired.
 */
#include <time.h>

#include "internal.h"

gv_counters gv_live_counters;

static std::atomic<int64_t> fault_countdown[GV_FAULT_KINDS];
static std::atomic<int> fault_device{-1}; /* only calls for this device count (-1: any) */
static std::atomic<int64_t> fault_fired[GV_FAULT_KINDS];
std::atomic<int> gv_poison_byte{-1};

/* ─── faults ────────────────────────────────────────────────────────────────── */

bool gv_fault_hit(int kind, int device) {
    if (kind < 0 || kind >= GV_FAULT_KINDS) return false;
    int only = fault_device.load();
    if (only >= 0 && device != only) return false;
    std::atomic<int64_t> &left = fault_countdown[kind];
    int64_t now = left.load(std::memory_order_relaxed);
    while (now > 0) {
        if (left.compare_exchange_weak(now, now - 1)) {
            if (now == 1) fault_fired[kind].fetch_add(1);
            return now == 1;
        }
    }
    return false;
}

const char *gv_fault_name(int kind) {
    switch (kind) {
    case GV_FAULT_DEVICE_ALLOC: return "GV_FAULT_DEVICE_ALLOC";
    case GV_FAULT_HOST_PIN: return "GV_FAULT_HOST_PIN";
    case GV_FAULT_COPY: return "GV_FAULT_COPY";
    case GV_FAULT_EVENT: return "GV_FAULT_EVENT";
    case GV_FAULT_PEER_COPY: return "GV_FAULT_PEER_COPY";
    case GV_FAULT_FREE_DEVICE: return "GV_FAULT_FREE_DEVICE";
    default: return "GV_FAULT_?";
    }
}

extern "C" int gv_fault_inject(int kind, int64_t k) {
    GV_REQUIRE(kind >= 0 && kind < GV_FAULT_KINDS, "gv_fault_inject: kind %d is not a fault kind (0..%d)", kind,
               GV_FAULT_KINDS - 1);
    fault_countdown[kind].store(k > 0 ? k : 0);
    return GV_OK;
}

extern "C" void gv_fault_device(int device) { fault_device.store(device < 0 ? -1 : device); }

extern "C" int64_t gv_fault_fired(int kind) {
    if (kind < 0 || kind >= GV_FAULT_KINDS) return -1;
    return fault_fired[kind].load();
}

extern "C" void gv_fault_reset(void) {
    for (int kind = 0; kind < GV_FAULT_KINDS; kind++) {
        fault_countdown[kind].store(0);
        fault_fired[kind].store(0);
    }
    fault_device.store(-1);
}

extern "C" int gv_debug_block(int ms, int32_t *returned, int32_t *gate) {
    if (!gv_gate_enter(gate)) return gv_fail(GV_ERR_CANCELLED, "gv_debug_block: this thread was retired");
    /* A busy wait, not a sleep: a sleep is a system call, which a Worker's terminate() interrupts. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double end = (double)now.tv_sec + now.tv_nsec * 1e-9 + ms / 1000.0;
    do clock_gettime(CLOCK_MONOTONIC, &now);
    while ((double)now.tv_sec + now.tv_nsec * 1e-9 < end);
    if (returned != NULL) __atomic_store_n(returned, 1, __ATOMIC_SEQ_CST);
    return gv_gate_leave(gate, GV_OK);
}

extern "C" void gv_debug_poison(int byte) { gv_poison_byte.store(byte < 0 ? -1 : byte & 0xff); }

/* ─── counters ──────────────────────────────────────────────────────────────── */

extern "C" void gv_live(gv_live_counts *out) {
    if (out == NULL) return;
    out->arenas = gv_live_counters.arenas.load();
    out->arena_bytes = gv_live_counters.arena_bytes.load();
    out->pinned_ranges = gv_live_counters.pinned_ranges.load();
    out->pinned_bytes = gv_live_counters.pinned_bytes.load();
    out->stagers = gv_live_counters.stagers.load();
    out->copies = gv_live_counters.copies.load();
}
