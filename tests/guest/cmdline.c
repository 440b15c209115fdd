/* The chv.* keys of the kernel command line. Other words are ignored, so the
 * same line may carry options for a real kernel too. */
#include "guest.h"

const char *const check_names[CHECK_COUNT] = {
    [CHECK_BOOT] = "boot",	 [CHECK_CMDLINE] = "cmdline", [CHECK_MEM] = "mem",
    [CHECK_INITRD] = "initrd",	 [CHECK_ACPI] = "acpi",	      [CHECK_MADT] = "madt",
    [CHECK_SMP] = "smp",	 [CHECK_CMOS] = "cmos",	      [CHECK_CPL3] = "cpl3",
    [CHECK_PCI] = "pci",	 [CHECK_RNG] = "rng",	      [CHECK_BLK] = "blk",
    [CHECK_CONSOLE] = "console", [CHECK_NET] = "net",	      [CHECK_HOSTILE] = "hostile",
    [CHECK_BENCH] = "bench",
};

static void add_error(struct options *o, const char *key, const char *v, size_t vlen)
{
	if (o->n_errors < 4) {
		char val[48];
		size_t n = vlen < sizeof(val) - 1 ? vlen : sizeof(val) - 1;
		memcpy(val, v, n);
		val[n] = '\0';
		ksnprintf(o->errors[o->n_errors], sizeof(o->errors[0]), "%s=\"%s\" is invalid", key,
			  val);
	}
	o->n_errors++;
}

static bool word_is(const char *w, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && memcmp(w, lit, l) == 0;
}

static bool parse_checks(struct options *o, const char *v, size_t n)
{
	bool want[CHECK_COUNT] = {0};

	if (word_is(v, n, "all")) {
		for (int i = 0; i < CHECK_COUNT; i++)
			want[i] = true;
		memcpy(o->want, want, sizeof(want));
		return true;
	}
	while (n) {
		size_t l = 0;
		while (l < n && v[l] != ',')
			l++;
		int i;
		for (i = 0; i < CHECK_COUNT; i++)
			if (word_is(v, l, check_names[i]))
				break;
		if (i == CHECK_COUNT)
			return false;
		want[i] = true;
		if (l == n)
			break;
		v += l + 1;
		n -= l + 1;
		if (!n) /* trailing comma */
			return false;
	}
	memcpy(o->want, want, sizeof(want));
	return true;
}

static bool parse_initrd(struct options *o, const char *v, size_t n)
{
	size_t colon = 0;
	while (colon < n && v[colon] != ':')
		colon++;
	if (colon == n)
		return false;
	return parse_size(v, colon, &o->initrd_size) &&
	       parse_hex32(v + colon + 1, n - colon - 1, &o->initrd_crc);
}

/* Splits v at ':' into at most max fields; returns how many. */
static unsigned split_colons(const char *v, size_t n, const char **f, size_t *fl, unsigned max)
{
	unsigned k = 0;
	while (k < max) {
		size_t l = 0;
		while (l < n && v[l] != ':')
			l++;
		f[k] = v;
		fl[k++] = l;
		if (l == n)
			return k;
		v += l + 1;
		n -= l + 1;
	}
	return max + 1; /* too many */
}

/* chv.blk=SECTORS:CRC32 (the CRC of the first SECTORS sectors, hex). */
static bool parse_blk(struct options *o, const char *v, size_t n)
{
	const char *f[2];
	size_t fl[2];
	uint64_t x;
	if (split_colons(v, n, f, fl, 2) != 2 || !parse_size(f[0], fl[0], &x) || x == 0 ||
	    x > BLK_MAX_SECTORS || !parse_hex32(f[1], fl[1], &o->blk_crc))
		return false;
	o->blk_sectors = (uint32_t)x;
	return (o->have_blk = true);
}

/* chv.blkw=SECTOR:COUNT:SEED (SEED hex). */
static bool parse_blkw(struct options *o, const char *v, size_t n)
{
	const char *f[3];
	size_t fl[3];
	uint64_t x;
	if (split_colons(v, n, f, fl, 3) != 3 || !parse_size(f[0], fl[0], &o->blkw_sector) ||
	    !parse_size(f[1], fl[1], &x) || x == 0 || x > BLK_MAX_SECTORS ||
	    !parse_hex32(f[2], fl[2], &o->blkw_seed))
		return false;
	o->blkw_count = (uint32_t)x;
	return (o->have_blk = o->have_blkw = true);
}

/* A dotted quad a.b.c.d, each part decimal 0..255, into host order. */
static bool parse_ipv4(const char *v, size_t n, uint32_t *out)
{
	uint32_t ip = 0;
	unsigned parts = 0;
	size_t i = 0;
	while (parts < 4) {
		size_t l = 0;
		uint32_t x = 0;
		while (i + l < n && v[i + l] >= '0' && v[i + l] <= '9' && l < 3)
			x = x * 10 + (uint32_t)(v[i + l++] - '0');
		if (!l || x > 255)
			return false;
		ip = ip << 8 | x;
		i += l;
		if (++parts < 4) {
			if (i >= n || v[i] != '.')
				return false;
			i++;
		}
	}
	if (i != n)
		return false;
	*out = ip;
	return true;
}

/* chv.net=GUEST_IP,PEER_IP,PORT */
static bool parse_net(struct options *o, const char *v, size_t n)
{
	size_t c1 = 0, c2;
	uint32_t ip, peer;
	uint64_t port;
	while (c1 < n && v[c1] != ',')
		c1++;
	c2 = c1 + 1;
	while (c2 < n && v[c2] != ',')
		c2++;
	if (c2 >= n || !parse_ipv4(v, c1, &ip) || !parse_ipv4(v + c1 + 1, c2 - c1 - 1, &peer) ||
	    !parse_size(v + c2 + 1, n - c2 - 1, &port) || port == 0 || port > 65535 || ip == peer)
		return false;
	o->net_ip = ip;
	o->net_peer = peer;
	o->net_port = (uint16_t)port;
	return (o->have_net = true);
}

/* chv.hostile=KIND[,KIND...] (hostile_kind_names). */
static bool parse_hostile(struct options *o, const char *v, size_t n)
{
	while (n) {
		size_t l = 0;
		while (l < n && v[l] != ',')
			l++;
		unsigned k = 0;
		while (k < HOSTILE_KINDS && !word_is(v, l, hostile_kind_names[k]))
			k++;
		if (k == HOSTILE_KINDS)
			return false;
		o->hostile |= 1u << k;
		if (l == n)
			break;
		v += l + 1;
		n -= l + 1;
		if (!n)
			return false;
	}
	return (o->have_hostile = o->hostile != 0);
}

static bool parse_action(struct options *o, const char *v, size_t n)
{
	static const char *const names[] = {"poweroff", "reset", "triplefault", "hang", "mmioexec"};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (word_is(v, n, names[i])) {
			o->action = (enum action)i;
			return true;
		}
	return false;
}

static bool parse_word(struct options *o, const char *k, size_t kn, const char *v, size_t vn)
{
	uint64_t x;

	if (word_is(k, kn, "chv.checks")) {
		o->explicit_checks = true;
		return parse_checks(o, v, vn);
	}
	if (word_is(k, kn, "chv.mem"))
		return (o->have_mem = parse_size(v, vn, &o->mem) && o->mem > 0);
	if (word_is(k, kn, "chv.cpus")) {
		if (!parse_size(v, vn, &x) || x == 0 || x > GUEST_MAX_CPUS)
			return false;
		o->cpus = (uint32_t)x;
		return (o->have_cpus = true);
	}
	if (word_is(k, kn, "chv.pci")) {
		if (!parse_size(v, vn, &x) || x > 256)
			return false;
		o->pci_functions = (uint32_t)x;
		return (o->have_pci = true);
	}
	if (word_is(k, kn, "chv.rng")) {
		if (!parse_size(v, vn, &x) || x > 1)
			return false;
		o->have_rng = x == 1;
		return true;
	}
	if (word_is(k, kn, "chv.console")) {
		if (!parse_size(v, vn, &x) || x > 1)
			return false;
		o->have_console = x == 1;
		return true;
	}
	if (word_is(k, kn, "chv.blk"))
		return parse_blk(o, v, vn);
	if (word_is(k, kn, "chv.blkw"))
		return parse_blkw(o, v, vn);
	if (word_is(k, kn, "chv.blkid")) {
		if (vn == 0 || vn > 20)
			return false;
		memcpy(o->blkid, v, vn);
		o->blkid[vn] = '\0';
		return (o->have_blk = o->have_blkid = true);
	}
	if (word_is(k, kn, "chv.blkro")) {
		if (!parse_size(v, vn, &x) || x > 1)
			return false;
		o->blk_ro = x == 1;
		o->have_blk |= o->blk_ro;
		return true;
	}
	if (word_is(k, kn, "chv.net"))
		return parse_net(o, v, vn);
	if (word_is(k, kn, "chv.hostile"))
		return parse_hostile(o, v, vn);
	if (word_is(k, kn, "chv.bench"))
		return bench_parse(o, v, vn);
	if (word_is(k, kn, "chv.initrd"))
		return (o->have_initrd = parse_initrd(o, v, vn));
	if (word_is(k, kn, "chv.action"))
		return parse_action(o, v, vn);
	if (word_is(k, kn, "chv.loops"))
		return parse_size(v, vn, &o->loops) && o->loops > 0;
	if (word_is(k, kn, "chv.tag")) {
		if (vn == 0 || vn >= sizeof(o->tag_buf))
			return false;
		memcpy(o->tag_buf, v, vn);
		o->tag_buf[vn] = '\0';
		o->tag = o->tag_buf;
		return true;
	}
	if (o->n_errors < 4) {
		char key[32];
		size_t n = kn < sizeof(key) - 1 ? kn : sizeof(key) - 1;
		memcpy(key, k, n);
		key[n] = '\0';
		ksnprintf(o->errors[o->n_errors], sizeof(o->errors[0]), "unknown key %s", key);
	}
	o->n_errors++;
	return true; /* already recorded */
}

void options_parse(const char *cmdline, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->action = ACTION_POWEROFF;
	o->loops = 100000000;
	/* Without chv.checks: everything whose inputs are there (see finish). */
	for (int i = 0; i < CHECK_COUNT; i++)
		o->want[i] = true;

	const char *p = cmdline;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		const char *w = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		size_t n = (size_t)(p - w);
		if (n < 4 || memcmp(w, "chv.", 4) != 0)
			continue;
		size_t eq = 0;
		while (eq < n && w[eq] != '=')
			eq++;
		char key[32];
		size_t kn = eq < sizeof(key) - 1 ? eq : sizeof(key) - 1;
		memcpy(key, w, kn);
		key[kn] = '\0';
		if (eq == n || !parse_word(o, w, eq, w + eq + 1, n - eq - 1))
			add_error(o, key, eq == n ? "" : w + eq + 1, eq == n ? 0 : n - eq - 1);
	}
	if (!o->explicit_checks) {
		o->want[CHECK_MEM] = o->have_mem;
		o->want[CHECK_INITRD] = o->have_initrd;
		o->want[CHECK_PCI] = o->have_pci;
		o->want[CHECK_RNG] = o->have_rng;
		o->want[CHECK_BLK] = o->have_blk;
		o->want[CHECK_CONSOLE] = o->have_console;
		o->want[CHECK_NET] = o->have_net;
		o->want[CHECK_HOSTILE] = o->have_hostile;
		o->want[CHECK_BENCH] = o->have_bench;
		/* A net bench needs chv.net, which alone would turn the net check on. */
		if (bench_is_net(o))
			o->want[CHECK_NET] = false;
	}
}
