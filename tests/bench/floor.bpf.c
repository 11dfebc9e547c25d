// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The overhead benchmark's floor: an empty program on every tracepoint that
 * reqcost attaches to, and nothing else. What a run with these costs over an
 * untraced run is what attaching anything at all to those tracepoints costs
 * on this kernel (the syscall slow path every task takes while a syscall
 * tracepoint is enabled, and the tracepoint's own work before a program
 * runs), before reqcost's programs do any work.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "reqcost.h"
#include "traced_syscalls.h"

#define EMPTY_PAIR(name, sc, buf_arg, iovcnt_arg)				\
SEC("tp/syscalls/sys_enter_" #name)						\
int enter_##name(void *ctx) { return 0; }					\
SEC("tp/syscalls/sys_exit_" #name)						\
int exit_##name(void *ctx) { return 0; }

RC_TRACED_SYSCALLS(EMPTY_PAIR)

SEC("raw_tp/sched_process_fork")
int on_fork(void *ctx) { return 0; }

SEC("raw_tp/sched_process_exec")
int on_exec(void *ctx) { return 0; }

SEC("raw_tp/sched_process_exit")
int on_exit_process(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
