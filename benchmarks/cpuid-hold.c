// Shows a process the CPU of a machine without AVX-512, so onnxruntime and OpenVINO run their AVX2 kernels when
// our own are held to AVX2 (INFERENCE_CPU_ISA=avx2): the comparison a user with an AVX2-only CPU would make.
// onnxruntime's MLAS has no switch for this; it reads the CPUID instruction itself.
//
//   CPUID_HOLD=avx2 LD_PRELOAD=.build/benchmarks/cpuid-hold.so PROGRAM ...
//
// At load it asks Linux to make CPUID fault in this process (arch_prctl ARCH_SET_CPUID, inherited by threads;
// needs the cpuid_fault CPU flag, and exits with status 3 where there is none) and answers each faulting CPUID on
// SIGSEGV: it runs the real instruction with faulting lifted for that moment, clears the AVX-512 feature bits of
// leaf 7 (subleaves 0 and 1) and steps over the instruction. Any other SIGSEGV gets the default action again.
// glibc chooses its string functions before this runs: GLIBC_TUNABLES holds those (benchmarks/corpus.py).
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static void on_fault(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip == NULL || ip[0] != 0x0f || ip[1] != 0xa2) {
        signal(SIGSEGV, SIG_DFL);  // not a CPUID: the fault repeats and ends the process as it would have
        return;
    }
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, a, b, c, d);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        // EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL; ECX: VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ;
        // EDX: 4VNNIW, 4FMAPS, VP2INTERSECT, FP16.
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
    } else if (leaf == 7 && sub == 1) {
        a &= ~(1u << 5);  // AVX512_BF16
    }
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void hold(void) {
    const char *isa = getenv("CPUID_HOLD");
    if (isa == NULL || strcmp(isa, "avx2") != 0) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        perror("cpuid-hold: arch_prctl(ARCH_SET_CPUID) (this CPU or kernel cannot make CPUID fault)");
        _exit(3);
    }
}
