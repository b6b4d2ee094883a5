/*
 * hvspec-kvm: a small driver that lets `hvspec conform` ask the running
 * kernel.  It speaks JSON lines over stdin/stdout: one command (a flat JSON
 * object with a "cmd" key) in, one answer out.  Every ioctl failure comes
 * back as its errno name; unknown commands, unknown keys and malformed lines
 * come back as {"ok":false,"error":"EPROTO","message":...} and the driver
 * keeps reading.  Written from Documentation/virt/kvm/api.rst (sections 4.x
 * named beside each command); no selftest code.
 *
 * Commands (all numbers are JSON integers):
 *   caps                       API version and the capabilities conform uses
 *   create_vm guest_slot guest_gfn
 *                              a fresh VM (any previous one is destroyed), one
 *                              vCPU, and the guest program in its own memslot
 *                              (accesses need it below 4 GiB)
 *   enable_cap cap arg         KVM_ENABLE_CAP on the VM (api.rst 4.37)
 *   set_region slot gfn npages flags [newmem]
 *                              KVM_SET_USER_MEMORY_REGION (4.35); npages 0
 *                              deletes.  Host memory: anonymous, private,
 *                              MAP_NORESERVE; kept per slot id and reused when
 *                              the size is unchanged (flags change, move),
 *                              unless newmem is 1 (another userspace_addr)
 *   get_log slot               KVM_GET_DIRTY_LOG (4.8): set bit offsets
 *   clear_log slot first num [bits]
 *                              KVM_CLEAR_DIRTY_LOG (4.117) with a user bitmap:
 *                              bit i = page first+i; no "bits": all set
 *   access gfn write value     the vCPU loads (write 0) or stores a 32-bit
 *                              value at gfn*4096 (api.rst 4.10 KVM_RUN)
 *   peek gfns                  the host's copy of the first 32-bit word of each
 *                              gfn (no guest access, no dirty-log effect)
 *   protect gfn npages         mprotect read-only then read-write over the
 *                              host pages of a guest range: an MMU-notifier
 *                              invalidation with no change of contents
 *   prefault gpa size flags    KVM_PRE_FAULT_MEMORY (4.143) on the vCPU
 *   set_attrs address size attributes flags
 *                              KVM_SET_MEMORY_ATTRIBUTES (4.141)
 *   stats                      the VM's binary stats (api.rst KVM_GET_STATS_FD):
 *                              pages_4k/pages_2m/pages_1g where present
 *
 * The guest runs in 32-bit flat protected mode set up with KVM_SET_SREGS
 * (no descriptor table in guest memory is needed: the hidden segment state
 * is what the CPU uses), paging off, so every gfn below 2^20 is reachable.
 * A guest that does not halt within two seconds is stopped by SIGALRM
 * (KVM_RUN returns EINTR) and reported as "timeout".
 */
#define _GNU_SOURCE
#if !defined(__x86_64__)
#error "hvspec-kvm runs its guest program as x86 code: it needs an x86-64 KVM host"
#endif
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * /usr/include/linux/kvm.h on this image predates these (uapi kvm.h of
 * Linux 6.8 / 6.11); values from the upstream uapi header.
 */
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_PRE_FAULT_MEMORY
#define KVM_CAP_PRE_FAULT_MEMORY 236
#endif
#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#endif
#ifndef KVM_PRE_FAULT_MEMORY
struct kvm_pre_fault_memory {
	__u64 gpa;
	__u64 size;
	__u64 flags;
	__u64 padding[5];
};
#define KVM_PRE_FAULT_MEMORY _IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)
#endif

#define PAGE 4096ULL
#define MAX_LINE (1 << 20)      /* longest command line accepted */
#define MAX_KEYS 8
#define MAX_SLOTS 64            /* host mappings the driver keeps at once */
#define GUEST_TIMEOUT_US 2000000 /* generous: the machines are shared */

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static char *out;
static size_t out_len, out_cap;

static void emit(const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(out + out_len, out_cap - out_len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < out_cap - out_len) {
			out_len += (size_t)n;
			return;
		}
		out_cap = out_cap * 2 + (size_t)(n > 0 ? n : 64);
		out = realloc(out, out_cap);
		if (!out)
			abort();
	}
}

static void flush_line(void)
{
	fwrite(out, 1, out_len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	out_len = 0;
}

/* An answer for a failed ioctl: its errno by name. */
static const char *errno_name(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EFAULT: return "EFAULT";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case EINTR: return "EINTR";
	case EAGAIN: return "EAGAIN";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case ENOSPC: return "ENOSPC";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTTY: return "ENOTTY";
	case EBADF: return "EBADF";
	case ENODEV: return "ENODEV";
	case ERANGE: return "ERANGE";
	default: return NULL;
	}
}

static void fail_errno(int e)
{
	const char *n = errno_name(e);
	if (n)
		emit("{\"ok\":false,\"error\":\"%s\"}", n);
	else
		emit("{\"ok\":false,\"error\":\"E%d\"}", e);
}

static void fail_proto(const char *msg)
{
	out_len = 0;
	emit("{\"ok\":false,\"error\":\"EPROTO\",\"message\":\"%s\"}", msg);
}

/* ------------------------------------------------------------------ */
/* A strict parser for one flat JSON object                             */
/* ------------------------------------------------------------------ */

enum vkind { V_INT, V_BOOL, V_STR, V_ARR };

struct value {
	char key[24];
	enum vkind kind;
	long long i;            /* V_INT, V_BOOL */
	unsigned long long u;   /* V_INT: the magnitude, exact up to 2^64-1 */
	int big;                /* V_INT: above LLONG_MAX (only get_u64 takes it) */
	char s[32];             /* V_STR */
	long long *arr;         /* V_ARR */
	size_t n;
};

static struct value vals[MAX_KEYS];
static int nvals;
static const char *perr;

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static int parse_string(const char **p, char *dst, size_t cap)
{
	size_t n = 0;
	if (**p != '"')
		return perr = "expected a string", -1;
	(*p)++;
	while (**p != '"') {
		unsigned char c = (unsigned char)**p;
		/* Keys and the few string values are plain identifiers: no escapes. */
		if (c == '\0' || c == '\\' || c < 0x20)
			return perr = "unsupported character in string", -1;
		if (n + 1 >= cap)
			return perr = "string too long", -1;
		dst[n++] = (char)c;
		(*p)++;
	}
	dst[n] = '\0';
	(*p)++;
	return 0;
}

static int parse_num(const char **p, long long *v, unsigned long long *u, int *big)
{
	const char *s = *p;
	int neg = 0;
	unsigned long long acc = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (*s < '0' || *s > '9')
		return perr = "expected a number", -1;
	while (*s >= '0' && *s <= '9') {
		if (acc > (ULLONG_MAX - (unsigned)(*s - '0')) / 10)
			return perr = "number out of range", -1;
		acc = acc * 10 + (unsigned)(*s - '0');
		s++;
	}
	if (*s == '.' || *s == 'e' || *s == 'E')
		return perr = "numbers must be integers", -1;
	if (acc > (unsigned long long)LLONG_MAX + (neg ? 1ULL : 0ULL)) {
		if (neg || !big)
			return perr = "number out of range", -1;
		*big = 1;
		*v = 0;
	} else {
		*v = neg ? (long long)(0ULL - acc) : (long long)acc;
	}
	if (u)
		*u = acc;
	*p = s;
	return 0;
}

static int parse_int(const char **p, long long *v)
{
	return parse_num(p, v, NULL, NULL);
}

static void free_vals(void)
{
	for (int i = 0; i < nvals; i++)
		free(vals[i].arr);
	nvals = 0;
}

static int parse_line(const char *line)
{
	const char *p = line;
	free_vals();
	skip_ws(&p);
	if (*p != '{')
		return perr = "expected a JSON object", -1;
	p++;
	skip_ws(&p);
	if (*p == '}') {
		p++;
		goto end;
	}
	for (;;) {
		if (nvals == MAX_KEYS)
			return perr = "too many keys", -1;
		struct value *v = &vals[nvals];
		memset(v, 0, sizeof(*v));
		skip_ws(&p);
		if (parse_string(&p, v->key, sizeof(v->key)))
			return -1;
		for (int i = 0; i < nvals; i++)
			if (!strcmp(vals[i].key, v->key))
				return perr = "duplicate key", -1;
		skip_ws(&p);
		if (*p++ != ':')
			return perr = "expected ':'", -1;
		skip_ws(&p);
		nvals++;
		if (*p == '"') {
			v->kind = V_STR;
			if (parse_string(&p, v->s, sizeof(v->s)))
				return -1;
		} else if (!strncmp(p, "true", 4)) {
			v->kind = V_BOOL, v->i = 1, p += 4;
		} else if (!strncmp(p, "false", 5)) {
			v->kind = V_BOOL, v->i = 0, p += 5;
		} else if (*p == '[') {
			size_t cap = 16;
			v->kind = V_ARR;
			v->arr = malloc(cap * sizeof(long long));
			if (!v->arr)
				return perr = "out of memory", -1;
			p++;
			skip_ws(&p);
			if (*p == ']') {
				p++;
			} else {
				for (;;) {
					if (v->n == cap) {
						cap *= 2;
						long long *a = realloc(v->arr, cap * sizeof(long long));
						if (!a)
							return perr = "out of memory", -1;
						v->arr = a;
					}
					skip_ws(&p);
					if (parse_int(&p, &v->arr[v->n]))
						return -1;
					v->n++;
					skip_ws(&p);
					if (*p == ',') {
						p++;
						continue;
					}
					if (*p++ != ']')
						return perr = "expected ',' or ']'", -1;
					break;
				}
			}
		} else {
			v->kind = V_INT;
			if (parse_num(&p, &v->i, &v->u, &v->big))
				return -1;
		}
		skip_ws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != '}')
			return perr = "expected ',' or '}'", -1;
		break;
	}
end:
	skip_ws(&p);
	if (*p != '\0')
		return perr = "trailing characters after the object", -1;
	return 0;
}

static struct value *find(const char *key)
{
	for (int i = 0; i < nvals; i++)
		if (!strcmp(vals[i].key, key))
			return &vals[i];
	return NULL;
}

/* Every key must be in `allowed` (space separated, "cmd" implied). */
static int keys_allowed(const char *allowed)
{
	for (int i = 0; i < nvals; i++) {
		const char *k = vals[i].key;
		size_t kl = strlen(k);
		const char *a = allowed;
		int found = !strcmp(k, "cmd");
		while (!found && *a) {
			const char *e = strchr(a, ' ');
			size_t l = e ? (size_t)(e - a) : strlen(a);
			if (l == kl && !strncmp(a, k, l))
				found = 1;
			a += l + (e ? 1 : 0);
		}
		if (!found) {
			perr = "unknown key for this command";
			return -1;
		}
	}
	return 0;
}

static int get_int(const char *key, long long min, long long max, long long *v)
{
	struct value *x = find(key);
	if (!x || x->kind != V_INT || x->big || x->i < min || x->i > max) {
		perr = "missing or out-of-range integer argument";
		return -1;
	}
	*v = x->i;
	return 0;
}

/* An unsigned 64-bit argument (KVM_PRE_FAULT_MEMORY's gpa and size may be near 2^64). */
static int get_u64(const char *key, unsigned long long *v)
{
	struct value *x = find(key);
	if (!x || x->kind != V_INT || (!x->big && x->i < 0)) {
		perr = "missing or negative integer argument";
		return -1;
	}
	*v = x->u;
	return 0;
}

static int get_bool(const char *key, int *v)
{
	struct value *x = find(key);
	if (!x || x->kind != V_BOOL) {
		perr = "missing boolean argument";
		return -1;
	}
	*v = (int)x->i;
	return 0;
}

/* ------------------------------------------------------------------ */
/* KVM state                                                            */
/* ------------------------------------------------------------------ */

static int kvm_fd = -1, vm_fd = -1, vcpu_fd = -1, stats_fd = -1;
static struct kvm_run *run;
static size_t run_size;

struct hostmem {
	int used;
	long long slot;
	unsigned long long gfn, npages;
	void *hva;
};
static struct hostmem mem[MAX_SLOTS];
static unsigned long long guest_gpa;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	/* Closes the window between the check and KVM_RUN (api.rst: immediate_exit). */
	if (run)
		run->immediate_exit = 1;
}

static struct hostmem *mem_of_slot(long long slot)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (mem[i].used && mem[i].slot == slot)
			return &mem[i];
	return NULL;
}

static struct hostmem *mem_of_gfn(unsigned long long gfn)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (mem[i].used && gfn >= mem[i].gfn && gfn < mem[i].gfn + mem[i].npages)
			return &mem[i];
	return NULL;
}

static void destroy_vm(void)
{
	for (int i = 0; i < MAX_SLOTS; i++) {
		if (mem[i].used)
			munmap(mem[i].hva, mem[i].npages * PAGE);
		mem[i].used = 0;
	}
	if (run)
		munmap(run, run_size);
	run = NULL;
	if (stats_fd >= 0)
		close(stats_fd);
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	if (vm_fd >= 0)
		close(vm_fd);
	stats_fd = vcpu_fd = vm_fd = -1;
}

static int need_vm(void)
{
	if (vm_fd < 0) {
		perr = "no VM: send create_vm first";
		return -1;
	}
	return 0;
}

/* One KVM_SET_USER_MEMORY_REGION; host memory follows the slot id. */
static int set_region(long long slot, unsigned long long gfn, unsigned long long npages, unsigned flags, int newmem)
{
	struct hostmem *m = mem_of_slot(slot);
	struct kvm_userspace_memory_region r = { .slot = (__u32)slot, .flags = flags, .guest_phys_addr = gfn * PAGE,
						 .memory_size = npages * PAGE };
	void *fresh = NULL;
	if (npages > 0) {
		/* The slot's own memory unless asked for new memory (another userspace_addr). */
		if (m && m->npages == npages && !newmem) {
			r.userspace_addr = (unsigned long)m->hva;
		} else {
			fresh = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (fresh == MAP_FAILED) {
				/*
				 * No host memory for a slot this large. KVM checks the size, the
				 * flags and the id before it touches user memory, so ask it with a
				 * page-aligned address nothing is mapped at: a refusal is KVM's
				 * answer to the request; an acceptance is undone and reported as
				 * ENOMEM (the driver cannot back it).
				 */
				r.userspace_addr = 1ULL << 40;
				if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
					return -errno;
				r.memory_size = 0;
				ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
				return -ENOMEM;
			}
			r.userspace_addr = (unsigned long)fresh;
		}
	} else if (m) {
		r.userspace_addr = (unsigned long)m->hva;
	}
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		int e = errno;
		if (fresh)
			munmap(fresh, npages * PAGE);
		return -e;
	}
	if (npages == 0) {
		if (m) {
			munmap(m->hva, m->npages * PAGE);
			m->used = 0;
		}
		return 0;
	}
	if (fresh) {
		if (m) {
			munmap(m->hva, m->npages * PAGE);
		} else {
			for (int i = 0; i < MAX_SLOTS && !m; i++)
				if (!mem[i].used)
					m = &mem[i];
			if (!m) {
				/* Out of bookkeeping: undo the slot so the kernel and we agree. */
				struct kvm_userspace_memory_region d = r;
				d.memory_size = 0;
				ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &d);
				munmap(fresh, npages * PAGE);
				return -ENOSPC;
			}
		}
		m->hva = fresh;
		m->used = 1;
		m->slot = slot;
		m->npages = npages;
	}
	m->gfn = gfn;
	return 0;
}

/*
 * The guest program (32-bit code, at guest_gpa):
 *   +0: 89 18   mov [eax], ebx      +2: f4 hlt
 *   +8: 8b 18   mov ebx, [eax]     +10: f4 hlt
 */
static const unsigned char guest_code[] = { 0x89, 0x18, 0xf4, 0x90, 0x90, 0x90, 0x90, 0x90, 0x8b, 0x18, 0xf4 };

static int setup_cpu(void)
{
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11, .present = 1,
				    .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	struct kvm_segment data = code;
	data.selector = 0x10;
	data.type = 3;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 = (s.cr0 | 1ULL) & ~(1ULL << 31); /* PE on, PG off */
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	return 0;
}

static void cmd_caps(void)
{
	static const struct { const char *name; long cap; } caps[] = {
		{ "nrMemslots", KVM_CAP_NR_MEMSLOTS },
		{ "userMemory", KVM_CAP_USER_MEMORY },
		{ "readonlyMem", KVM_CAP_READONLY_MEM },
		{ "manualDirtyLogProtect2", KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 },
		{ "binaryStatsFd", KVM_CAP_BINARY_STATS_FD },
		{ "memoryAttributes", KVM_CAP_MEMORY_ATTRIBUTES },
		{ "preFaultMemory", KVM_CAP_PRE_FAULT_MEMORY },
	};
	int api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
	emit("{\"ok\":true,\"api\":%d,\"caps\":{", api);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		int r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap);
		emit("%s\"%s\":%d", i ? "," : "", caps[i].name, r < 0 ? 0 : r);
	}
	emit("}}");
}

static void cmd_create_vm(void)
{
	long long slot, gfn;
	if (keys_allowed("guest_slot guest_gfn") || get_int("guest_slot", 0, 0xffff, &slot) ||
	    get_int("guest_gfn", 0, 1LL << 40, &gfn))
		return fail_proto(perr);
	destroy_vm();
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		return fail_errno(errno);
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0) {
		int e = errno;
		destroy_vm();
		return fail_errno(e);
	}
	int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0) {
		int e = errno;
		destroy_vm();
		return fail_errno(e);
	}
	run_size = (size_t)sz;
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED) {
		int e = errno;
		run = NULL;
		destroy_vm();
		return fail_errno(e);
	}
	int r = set_region(slot, (unsigned long long)gfn, 1, 0, 0);
	if (r == 0)
		r = setup_cpu();
	if (r < 0) {
		destroy_vm();
		return fail_errno(-r);
	}
	guest_gpa = (unsigned long long)gfn * PAGE;
	memcpy(mem_of_slot(slot)->hva, guest_code, sizeof(guest_code));
	emit("{\"ok\":true}");
}

static void cmd_enable_cap(void)
{
	long long cap, arg;
	if (keys_allowed("cap arg") || get_int("cap", 0, 0xffffffffLL, &cap) || get_int("arg", 0, LLONG_MAX, &arg) || need_vm())
		return fail_proto(perr);
	struct kvm_enable_cap c = { .cap = (__u32)cap };
	c.args[0] = (__u64)arg;
	if (ioctl(vm_fd, KVM_ENABLE_CAP, &c) < 0)
		return fail_errno(errno);
	emit("{\"ok\":true}");
}

static void cmd_set_region(void)
{
	long long slot, gfn, npages, flags, newmem = 0;
	if (keys_allowed("slot gfn npages flags newmem") || get_int("slot", 0, 0xffffffffLL, &slot) ||
	    get_int("gfn", 0, 1LL << 52, &gfn) || get_int("npages", 0, 1LL << 40, &npages) ||
	    get_int("flags", 0, 0xffffffffLL, &flags) || (find("newmem") && get_int("newmem", 0, 1, &newmem)) || need_vm())
		return fail_proto(perr);
	int r = set_region(slot, (unsigned long long)gfn, (unsigned long long)npages, (unsigned)flags, (int)newmem);
	if (r < 0)
		return fail_errno(-r);
	emit("{\"ok\":true}");
}

/* Bitmap words for `n` bits, at least one (the kernel reads whole longs). */
static size_t words_for(unsigned long long n)
{
	size_t w = (size_t)((n + 63) / 64);
	return w ? w : 1;
}

static void cmd_get_log(void)
{
	long long slot;
	if (keys_allowed("slot") || get_int("slot", 0, 0xffffffffLL, &slot) || need_vm())
		return fail_proto(perr);
	struct hostmem *m = mem_of_slot(slot);
	unsigned long long n = m ? m->npages : 64;
	uint64_t *bm = calloc(words_for(n), 8);
	if (!bm)
		return fail_errno(ENOMEM);
	struct kvm_dirty_log l = { .slot = (__u32)slot };
	l.dirty_bitmap = bm;
	if (ioctl(vm_fd, KVM_GET_DIRTY_LOG, &l) < 0) {
		int e = errno;
		free(bm);
		return fail_errno(e);
	}
	emit("{\"ok\":true,\"dirty\":[");
	int first = 1;
	for (unsigned long long i = 0; i < n; i++)
		if (bm[i / 64] >> (i % 64) & 1) {
			emit("%s%llu", first ? "" : ",", i);
			first = 0;
		}
	emit("]}");
	free(bm);
}

static void cmd_clear_log(void)
{
	long long slot, first, num;
	if (keys_allowed("slot first num bits") || get_int("slot", 0, 0xffffffffLL, &slot) ||
	    get_int("first", 0, 1LL << 40, &first) || get_int("num", 0, 0xffffffffLL, &num) || need_vm())
		return fail_proto(perr);
	struct value *bits = find("bits");
	if (bits && bits->kind != V_ARR)
		return fail_proto("bits must be an array of bit indices");
	if (num > (1LL << 26))
		return fail_proto("num too large for the driver's bitmap");
	uint64_t *bm = calloc(words_for((unsigned long long)num), 8);
	if (!bm)
		return fail_errno(ENOMEM);
	if (!bits) {
		for (long long i = 0; i < num; i++)
			bm[i / 64] |= 1ULL << (i % 64);
	} else {
		for (size_t k = 0; k < bits->n; k++) {
			long long i = bits->arr[k];
			if (i < 0 || i >= num) {
				free(bm);
				return fail_proto("a bit index is outside 0..num-1");
			}
			bm[i / 64] |= 1ULL << (i % 64);
		}
	}
	struct kvm_clear_dirty_log c = { .slot = (__u32)slot, .num_pages = (__u32)num, .first_page = (__u64)first };
	c.dirty_bitmap = bm;
	int r = ioctl(vm_fd, KVM_CLEAR_DIRTY_LOG, &c);
	int e = errno;
	free(bm);
	if (r < 0)
		return fail_errno(e);
	emit("{\"ok\":true}");
}

static void cmd_access(void)
{
	long long gfn, value;
	int write;
	if (keys_allowed("gfn write value") || get_int("gfn", 0, (1LL << 20) - 1, &gfn) || get_bool("write", &write) ||
	    get_int("value", -(1LL << 31), (1LL << 32) - 1, &value) || need_vm())
		return fail_proto(perr);
	if (guest_gpa >= (1ULL << 32))
		return fail_proto("the guest program lies above 4 GiB: this VM cannot run guest accesses");
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = guest_gpa + (write ? 0 : 8);
	regs.rax = (unsigned long long)gfn * PAGE;
	regs.rbx = (uint32_t)value;
	regs.rflags = 2;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fail_errno(errno);
	int mmio = 0;
	struct itimerval t = { .it_value = { .tv_sec = GUEST_TIMEOUT_US / 1000000, .tv_usec = GUEST_TIMEOUT_US % 1000000 } };
	struct itimerval off = { 0 };
	timed_out = 0;
	run->immediate_exit = 0;
	setitimer(ITIMER_REAL, &t, NULL);
	for (;;) {
		int r = ioctl(vcpu_fd, KVM_RUN, 0);
		if (r < 0) {
			int e = errno;
			setitimer(ITIMER_REAL, &off, NULL);
			run->immediate_exit = 0;
			if (e == EINTR && timed_out) {
				emit("{\"ok\":true,\"exit\":\"timeout\"}");
				return;
			}
			if (e == EINTR)
				continue;
			return fail_errno(e);
		}
		if (run->exit_reason == KVM_EXIT_MMIO) {
			/* Complete the access: reads see zeros; the next KVM_RUN finishes the instruction. */
			mmio = 1;
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			continue;
		}
		setitimer(ITIMER_REAL, &off, NULL);
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		emit("{\"ok\":true,\"exit\":\"unexpected\",\"reason\":%u}", run->exit_reason);
		return;
	}
	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return fail_errno(errno);
	emit("{\"ok\":true,\"exit\":\"%s\",\"value\":%d}", mmio ? "mmio" : "hlt", (int32_t)(uint32_t)regs.rbx);
}

static void cmd_peek(void)
{
	struct value *g = find("gfns");
	if (keys_allowed("gfns") || !g || g->kind != V_ARR || need_vm())
		return fail_proto(perr ? perr : "gfns must be an array");
	emit("{\"ok\":true,\"values\":[");
	for (size_t k = 0; k < g->n; k++) {
		struct hostmem *m = g->arr[k] < 0 ? NULL : mem_of_gfn((unsigned long long)g->arr[k]);
		if (!m)
			emit("%snull", k ? "," : "");
		else {
			int32_t v;
			memcpy(&v, (char *)m->hva + ((unsigned long long)g->arr[k] - m->gfn) * PAGE, 4);
			emit("%s%d", k ? "," : "", v);
		}
	}
	emit("]}");
}

static void cmd_protect(void)
{
	long long gfn, npages;
	if (keys_allowed("gfn npages") || get_int("gfn", 0, 1LL << 40, &gfn) || get_int("npages", 0, 1LL << 32, &npages) || need_vm())
		return fail_proto(perr);
	int touched = 0;
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct hostmem *m = &mem[i];
		if (!m->used)
			continue;
		unsigned long long lo = (unsigned long long)gfn > m->gfn ? (unsigned long long)gfn : m->gfn;
		unsigned long long hi = (unsigned long long)(gfn + npages) < m->gfn + m->npages ? (unsigned long long)(gfn + npages) : m->gfn + m->npages;
		if (lo >= hi || m->gfn * PAGE == guest_gpa)
			continue;
		char *a = (char *)m->hva + (lo - m->gfn) * PAGE;
		if (mprotect(a, (hi - lo) * PAGE, PROT_READ) < 0 || mprotect(a, (hi - lo) * PAGE, PROT_READ | PROT_WRITE) < 0)
			return fail_errno(errno);
		touched += (int)(hi - lo);
	}
	emit("{\"ok\":true,\"pages\":%d}", touched);
}

static void cmd_prefault(void)
{
	unsigned long long gpa, size, flags;
	if (keys_allowed("gpa size flags") || get_u64("gpa", &gpa) || get_u64("size", &size) || get_u64("flags", &flags) || need_vm())
		return fail_proto(perr);
	struct kvm_pre_fault_memory r = { .gpa = (__u64)gpa, .size = (__u64)size, .flags = (__u64)flags };
	if (ioctl(vcpu_fd, KVM_PRE_FAULT_MEMORY, &r) < 0) {
		int e = errno;
		/* A partial range comes back with gpa/size advanced (api.rst 4.143). */
		emit("{\"ok\":false,\"error\":\"%s\",\"gpa\":%llu,\"size\":%llu}", errno_name(e) ? errno_name(e) : "EUNKNOWN",
		     (unsigned long long)r.gpa, (unsigned long long)r.size);
		return;
	}
	emit("{\"ok\":true,\"gpa\":%llu,\"size\":%llu}", (unsigned long long)r.gpa, (unsigned long long)r.size);
}

static void cmd_set_attrs(void)
{
	long long address, size, attributes, flags;
	if (keys_allowed("address size attributes flags") || get_int("address", 0, LLONG_MAX, &address) ||
	    get_int("size", 0, LLONG_MAX, &size) || get_int("attributes", 0, LLONG_MAX, &attributes) ||
	    get_int("flags", 0, LLONG_MAX, &flags) || need_vm())
		return fail_proto(perr);
	struct kvm_memory_attributes a = { .address = (__u64)address, .size = (__u64)size, .attributes = (__u64)attributes,
					   .flags = (__u64)flags };
	if (ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a) < 0)
		return fail_errno(errno);
	emit("{\"ok\":true}");
}

static void cmd_stats(void)
{
	if (keys_allowed("") || need_vm())
		return fail_proto(perr);
	if (stats_fd < 0) {
		stats_fd = ioctl(vm_fd, KVM_GET_STATS_FD, 0);
		if (stats_fd < 0) {
			stats_fd = -1;
			return fail_errno(errno);
		}
	}
	struct kvm_stats_header h;
	if (pread(stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return fail_errno(EIO);
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	char *d = malloc(dsz * h.num_desc);
	if (!d)
		return fail_errno(ENOMEM);
	if (pread(stats_fd, d, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) {
		free(d);
		return fail_errno(EIO);
	}
	emit("{\"ok\":true,\"stats\":{");
	int n = 0;
	for (unsigned i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *x = (struct kvm_stats_desc *)(d + i * dsz);
		if (strcmp(x->name, "pages_4k") && strcmp(x->name, "pages_2m") && strcmp(x->name, "pages_1g"))
			continue;
		uint64_t v = 0;
		if (pread(stats_fd, &v, 8, h.data_offset + x->offset) != 8)
			continue;
		emit("%s\"%s\":%llu", n++ ? "," : "", x->name, (unsigned long long)v);
	}
	emit("}}");
	free(d);
}

int main(void)
{
	char *line = malloc(MAX_LINE + 2);
	out_cap = 4096;
	out = malloc(out_cap);
	if (!line || !out)
		return 3;
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		emit("{\"ok\":false,\"error\":\"%s\",\"message\":\"cannot open /dev/kvm\"}", errno_name(errno) ? errno_name(errno) : "EUNKNOWN");
		flush_line();
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN must come back with EINTR */
	sigaction(SIGALRM, &sa, NULL);
	emit("{\"ok\":true,\"ready\":\"hvspec-kvm/1\"}");
	flush_line();
	while (fgets(line, MAX_LINE + 2, stdin)) {
		size_t len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (len > MAX_LINE) {
			/* Too long: drop the rest of the line and answer once. */
			int c;
			while ((c = getchar()) != EOF && c != '\n')
				;
			fail_proto("line too long");
			flush_line();
			continue;
		}
		perr = NULL;
		out_len = 0;
		if (parse_line(line) < 0) {
			fail_proto(perr);
		} else {
			struct value *c = find("cmd");
			const char *cmd = c && c->kind == V_STR ? c->s : "";
			if (!strcmp(cmd, "caps")) cmd_caps();
			else if (!strcmp(cmd, "create_vm")) cmd_create_vm();
			else if (!strcmp(cmd, "enable_cap")) cmd_enable_cap();
			else if (!strcmp(cmd, "set_region")) cmd_set_region();
			else if (!strcmp(cmd, "get_log")) cmd_get_log();
			else if (!strcmp(cmd, "clear_log")) cmd_clear_log();
			else if (!strcmp(cmd, "access")) cmd_access();
			else if (!strcmp(cmd, "peek")) cmd_peek();
			else if (!strcmp(cmd, "protect")) cmd_protect();
			else if (!strcmp(cmd, "prefault")) cmd_prefault();
			else if (!strcmp(cmd, "set_attrs")) cmd_set_attrs();
			else if (!strcmp(cmd, "stats")) cmd_stats();
			else if (!strcmp(cmd, "quit")) break;
			else fail_proto("unknown command");
		}
		flush_line();
	}
	destroy_vm();
	return 0;
}
