/* TCP listeners of daemon/rpc (mutual TLS, and insecure on loopback only),
 * the client's TCP targets, chvctl's TLS options, and the address checks
 * they rest on. The TLS tests make a throwaway CA with the openssl command
 * and are skipped when it is missing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "client/chvctl.h"
#include "client/rpc_client.h"
#include "daemon/rpc.h"
#include "grpc/health/v1/health.pb-c.h"

#define REQ_DESC  (&grpc__health__v1__health_check_request__descriptor)
#define RESP_DESC (&grpc__health__v1__health_check_response__descriptor)
#define WHO	  "/chv.test.Tls/Who"

/* ---- addresses ---- */

static void test_addr_split_valid(void **state)
{
	(void)state;
	char host[64];
	unsigned port = 1;

	assert_int_equal(rpc_addr_split("127.0.0.1:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	assert_int_equal(rpc_addr_split("[::1]:50051", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 50051);
	assert_int_equal(rpc_addr_split("localhost:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 65535);
	assert_int_equal(rpc_addr_split("chvd.example:00443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "chvd.example");
	assert_int_equal(port, 443);
	assert_int_equal(rpc_addr_split("[fe80::1%eth0]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fe80::1%eth0");
}

static void test_addr_split_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",	      "127.0.0.1", ":80",     "127.0.0.1:", "[::1]",	 "[::1]80", "::1:80",
	    "[]:80",  "h:-1",	   "h:65536", "h:123456",   "h:12a",	 "h: 80",   "h:+80",
	    "[::1]:", "[::1:80",   "h:80:90", "h:0x50",	    "[::1]]:80",
	};
	char host[64];
	unsigned port = 7;

	assert_int_equal(rpc_addr_split(NULL, host, sizeof(host), &port), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rpc_addr_split(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
	}
	assert_int_equal(port, 7); /* untouched on failure */

	char tiny[4];
	assert_int_equal(rpc_addr_split("abcd:1", tiny, sizeof(tiny), &port), -ENAMETOOLONG);
	assert_int_equal(rpc_addr_split("abc:1", tiny, sizeof(tiny), &port), 0);
	assert_string_equal(tiny, "abc");
}

static void test_loopback(void **state)
{
	(void)state;
	static const char *const yes[] = {
	    "127.0.0.1",       "127.255.255.254",  "127.1.2.3",	       "127.0.0.0", "::1",
	    "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:127.9.8.7", "localhost", "LocalHost",
	};
	static const char *const no[] = {
	    "0.0.0.0",
	    "::",
	    "128.0.0.1",
	    "126.255.255.255",
	    "10.0.0.1",
	    "192.168.1.1",
	    "127.1",
	    "0177.0.0.1",
	    "localhost.",
	    "localhost.example",
	    "127.0.0.1.nip.io",
	    "",
	    "::2",
	    "::ffff:10.0.0.1",
	    "fe80::1",
	    " 127.0.0.1",
	    "127.0.0.1 ",
	    "::1%lo",
	    "[::1]",
	    "ip6-localhost",
	    "2130706433",
	    "::127.0.0.1",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!rpc_host_is_loopback(yes[i]))
			fail_msg("\"%s\" should be loopback", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (rpc_host_is_loopback(no[i]))
			fail_msg("\"%s\" should not be loopback", no[i]);
	assert_false(rpc_host_is_loopback(NULL));
}

/* ---- a server with one method that reports who called ---- */

static struct {
	pthread_mutex_t lock;
	struct rpc_identity id;
	char hooked[64];
	int calls;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void who_handler(struct rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
	(void)req;
	(void)ctx;
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	pthread_mutex_lock(&seen.lock);
	rpc_call_identity(call, &seen.id);
	seen.calls++;
	pthread_mutex_unlock(&seen.lock);
	resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	rpc_reply(call, &resp.base);
}

static void on_call(void *ctx, struct rpc_call *call, const char *method)
{
	(void)ctx;
	(void)call;
	pthread_mutex_lock(&seen.lock);
	snprintf(seen.hooked, sizeof(seen.hooked), "%s", method);
	pthread_mutex_unlock(&seen.lock);
}

static const struct rpc_method who_methods[] = {
    {WHO, RPC_UNARY, REQ_DESC, RESP_DESC, who_handler, NULL, false},
};

static struct rpc_server *server_new(void)
{
	struct rpc_server *s = NULL;
	struct rpc_server_opts o = {.on_call = on_call};
	struct chv_err err = {0};
	assert_int_equal(rpc_server_create(&s, &o, &err), 0);
	assert_int_equal(rpc_server_add_methods(s, who_methods, 1, &err), 0);
	return s;
}

/* One Who call; returns the gRPC status (or -errno before any). */
static int call_who(struct rpc_channel *ch, struct rpc_result *res)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	memset(res, 0, sizeof(*res));
	int rc = rpc_call_unary(ch, WHO, &req.base, RESP_DESC, &resp, 10000, false, res);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc < 0 && res->status == 0 ? rc : res->status;
}

static void test_add_tcp_refusals(void **state)
{
	(void)state;
	struct rpc_server *s = server_new();
	struct chv_err err = {0};
	int port = 99;

	assert_int_equal(rpc_server_add_tcp(s, "0.0.0.0:0", NULL, &port, &err), -EPERM);
	assert_non_null(strstr(err.msg, "0.0.0.0"));
	assert_non_null(strstr(err.msg, "loopback"));
	assert_int_equal(port, 0);
	assert_int_equal(rpc_server_add_tcp(s, "[::]:0", NULL, &port, &err), -EPERM);
	assert_int_equal(rpc_server_add_tcp(s, "192.0.2.1:0", NULL, &port, &err), -EPERM);
	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1", NULL, &port, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "HOST:PORT"));
	assert_int_equal(rpc_server_add_tcp(s, NULL, NULL, &port, &err), -EINVAL);

	struct rpc_tls empty = {.cert_pem = "", .key_pem = "x", .client_ca_pem = "x"};
	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1:0", &empty, &port, &err), -EINVAL);
	struct rpc_tls no_ca = {.cert_pem = "x", .key_pem = "x", .client_ca_pem = NULL};
	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1:0", &no_ca, &port, &err), -EINVAL);
	/* Not PEM at all: gRPC refuses the credentials when it binds. */
	struct rpc_tls junk = {.cert_pem = "junk", .key_pem = "junk", .client_ca_pem = "junk"};
	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1:0", &junk, &port, &err), -EADDRNOTAVAIL);
	assert_int_equal(port, 0);

	assert_int_equal(rpc_server_start(s, &err), 0);
	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1:0", NULL, &port, &err), -EBUSY);
	rpc_server_shutdown(s, 100);
}

static void test_insecure_loopback_end_to_end(void **state)
{
	(void)state;
	struct rpc_server *s = server_new();
	struct chv_err err = {0};
	int port = 0, port2 = 0;

	assert_int_equal(rpc_server_add_tcp(s, "127.0.0.1:0", NULL, &port, &err), 0);
	assert_in_range(port, 1, 65535);
	/* The same port again fails: gRPC's SO_REUSEPORT is turned off. */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(rpc_server_add_tcp(s, addr, NULL, &port2, &err), -EADDRNOTAVAIL);
	assert_int_equal(rpc_server_start(s, &err), 0);

	struct rpc_channel *ch = NULL;
	struct rpc_client_tls insecure = {.insecure = true};
	assert_int_equal(rpc_channel_open_tls(&ch, addr, &insecure, &err), 0);
	struct rpc_result res;
	assert_int_equal(call_who(ch, &res), 0);
	pthread_mutex_lock(&seen.lock);
	assert_false(seen.id.tls);
	assert_string_equal(seen.id.subject, "");
	assert_string_equal(seen.id.common_name, "");
	assert_non_null(strstr(seen.id.address, "127.0.0.1"));
	assert_string_equal(seen.hooked, WHO);
	pthread_mutex_unlock(&seen.lock);
	rpc_channel_close(ch);
	rpc_server_shutdown(s, 100);
}

/* ---- mutual TLS with a throwaway CA ---- */

static char pki[64];
static bool have_pki;

static int pki_setup(void **state)
{
	(void)state;
	snprintf(pki, sizeof(pki), "/tmp/chv-test-tls.XXXXXX");
	if (!mkdtemp(pki))
		return -1;
	char cmd[4096];
	/* EC P-256 keeps generation fast. The server certificate names
	 * 127.0.0.1 and localhost, as the client checks. */
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; command -v openssl >/dev/null || exit 77\n"
		 "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
		 "ca() { openssl req -x509 $ec -days 2 -subj \"/CN=$2\" -keyout $1.key -out "
		 "$1.crt; }\n"
		 "leaf() { openssl req $ec -subj \"$2\" -keyout $1.key -out $1.csr\n"
		 "  printf '%%s\\n' \"$4\" >$1.ext\n"
		 "  openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial "
		 "-days 2 -extfile $1.ext -out $1.crt; }\n"
		 "ca ca 'chv test CA'; ca other 'other CA'\n"
		 "leaf server /CN=chvd ca 'subjectAltName=IP:127.0.0.1,DNS:localhost'\n"
		 "leaf client '/O=chv-test/CN=ops' ca 'extendedKeyUsage=clientAuth'\n"
		 "leaf rogue /CN=rogue other 'extendedKeyUsage=clientAuth'\n",
		 pki);
	/* The script goes to bash's stdin, so it needs no quoting. */
	FILE *p = popen("bash -s >/dev/null 2>&1", "w");
	if (!p)
		return -1;
	fputs(cmd, p);
	have_pki = pclose(p) == 0;
	if (!have_pki)
		fprintf(stderr, "# openssl could not make test certificates: TLS tests skipped\n");
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", pki, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 65536);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, f);
	fclose(f);
	assert_true(n > 0);
	return buf;
}

struct tls_fixture {
	struct rpc_server *srv;
	char addr[64];
	char *ca, *other_ca, *server_crt, *server_key, *client_crt, *client_key, *rogue_crt,
	    *rogue_key;
};

static int tls_up(void **state)
{
	if (!have_pki)
		return 0;
	struct tls_fixture *f = calloc(1, sizeof(*f));
	struct chv_err err = {0};
	int port = 0;
	f->ca = slurp("ca.crt");
	f->other_ca = slurp("other.crt");
	f->server_crt = slurp("server.crt");
	f->server_key = slurp("server.key");
	f->client_crt = slurp("client.crt");
	f->client_key = slurp("client.key");
	f->rogue_crt = slurp("rogue.crt");
	f->rogue_key = slurp("rogue.key");
	f->srv = server_new();
	struct rpc_tls tls = {
	    .cert_pem = f->server_crt, .key_pem = f->server_key, .client_ca_pem = f->ca};
	assert_int_equal(rpc_server_add_tcp(f->srv, "127.0.0.1:0", &tls, &port, &err), 0);
	assert_in_range(port, 1, 65535);
	assert_int_equal(rpc_server_start(f->srv, &err), 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", port);
	*state = f;
	return 0;
}

static int tls_down(void **state)
{
	struct tls_fixture *f = *state;
	if (!f)
		return 0;
	rpc_server_shutdown(f->srv, 100);
	free(f->ca);
	free(f->other_ca);
	free(f->server_crt);
	free(f->server_key);
	free(f->client_crt);
	free(f->client_key);
	free(f->rogue_crt);
	free(f->rogue_key);
	free(f);
	return 0;
}

/* A Who call to f's server with these client credentials. */
static int tls_call(struct tls_fixture *f, const char *target, const struct rpc_client_tls *tls,
		    struct rpc_result *res)
{
	struct rpc_channel *ch = NULL;
	struct chv_err err = {0};
	assert_int_equal(rpc_channel_open_tls(&ch, target ? target : f->addr, tls, &err), 0);
	int st = call_who(ch, res);
	rpc_channel_close(ch);
	return st;
}

static void test_tls_client_certificate(void **state)
{
	struct tls_fixture *f = *state;
	if (!have_pki)
		skip();
	struct rpc_client_tls tls = {
	    .ca_pem = f->ca, .cert_pem = f->client_crt, .key_pem = f->client_key};
	struct rpc_result res;
	assert_int_equal(tls_call(f, NULL, &tls, &res), 0);
	pthread_mutex_lock(&seen.lock);
	assert_true(seen.id.tls);
	assert_string_equal(seen.id.common_name, "ops");
	assert_non_null(strstr(seen.id.subject, "CN=ops"));
	assert_non_null(strstr(seen.id.subject, "O=chv-test"));
	assert_non_null(strstr(seen.id.address, "127.0.0.1"));
	pthread_mutex_unlock(&seen.lock);
	/* The certificate names localhost too. */
	char local[64];
	snprintf(local, sizeof(local), "localhost:%s", strrchr(f->addr, ':') + 1);
	assert_int_equal(tls_call(f, local, &tls, &res), 0);
}

static void test_tls_refuses_bad_clients(void **state)
{
	struct tls_fixture *f = *state;
	if (!have_pki)
		skip();
	struct rpc_result res;
	pthread_mutex_lock(&seen.lock);
	int before = seen.calls;
	pthread_mutex_unlock(&seen.lock);

	struct rpc_client_tls no_cert = {.ca_pem = f->ca};
	assert_int_equal(tls_call(f, NULL, &no_cert, &res), 14 /* UNAVAILABLE */);
	struct rpc_client_tls rogue = {
	    .ca_pem = f->ca, .cert_pem = f->rogue_crt, .key_pem = f->rogue_key};
	assert_int_equal(tls_call(f, NULL, &rogue, &res), 14);
	struct rpc_client_tls plain = {.insecure = true};
	assert_int_equal(tls_call(f, NULL, &plain, &res), 14);
	/* And the client refuses a server its CA did not sign. */
	struct rpc_client_tls wrong_ca = {
	    .ca_pem = f->other_ca, .cert_pem = f->client_crt, .key_pem = f->client_key};
	assert_int_equal(tls_call(f, NULL, &wrong_ca, &res), 14);

	pthread_mutex_lock(&seen.lock);
	assert_int_equal(seen.calls, before); /* no handler ran */
	pthread_mutex_unlock(&seen.lock);
}

/* ---- client-side argument checks ---- */

static void test_channel_open_tls_args(void **state)
{
	(void)state;
	struct rpc_channel *ch = (struct rpc_channel *)1;
	struct chv_err err = {0};
	struct rpc_client_tls insecure = {.insecure = true};
	struct rpc_client_tls half = {.ca_pem = "x", .cert_pem = "x"};
	struct rpc_client_tls mixed = {.insecure = true, .ca_pem = "x"};
	static const char *const bad[] = {
	    "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "h:",     "dns:///h:1",
	    ":80",	 "::1:80",	"[::1]",	   "h:80/x", "user@h:80",
	    "[]:80",	 "h:8o",	"tcp://h:80",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rpc_channel_open_tls(&ch, bad[i], &insecure, &err) != -EINVAL)
			fail_msg("target \"%s\" was accepted", bad[i]);
		assert_null(ch);
	}
	assert_int_equal(rpc_channel_open_tls(&ch, NULL, &insecure, &err), -EINVAL);
	assert_int_equal(rpc_channel_open(&ch, "127.0.0.1:80", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "TLS"));
	assert_int_equal(rpc_channel_open_tls(&ch, "unix:/x.sock", &insecure, &err), -EINVAL);
	assert_int_equal(rpc_channel_open_tls(&ch, "127.0.0.1:80", &half, &err), -EINVAL);
	assert_int_equal(rpc_channel_open_tls(&ch, "127.0.0.1:80", &mixed, &err), -EINVAL);

	/* Good shapes open (lazily: nothing listens there). */
	assert_int_equal(rpc_channel_open_tls(&ch, "[::1]:1", &insecure, &err), 0);
	rpc_channel_close(ch);
	assert_int_equal(rpc_channel_open_tls(&ch, "localhost:65535", &insecure, &err), 0);
	rpc_channel_close(ch);
}

static void test_chvctl_tcp_options(void **state)
{
	(void)state;
	struct chvctl_opts o;
	struct chv_err err = {0};
	char t[256];
	int idx;
	char *argv[] = {"chvctl",
			"--socket",
			"tcp://127.0.0.1:5000",
			"--tls-ca=ca.pem",
			"--tls-cert",
			"c.pem",
			"--tls-key",
			"k.pem",
			"ping",
			NULL};

	assert_int_equal(chvctl_parse_global(&o, 9, argv, &idx, &err), 0);
	assert_int_equal(idx, 8);
	assert_string_equal(o.tls_ca, "ca.pem");
	assert_string_equal(o.tls_cert, "c.pem");
	assert_string_equal(o.tls_key, "k.pem");
	assert_false(o.insecure);
	assert_int_equal(chvctl_socket_target(o.socket, t, sizeof(t), &err), 0);
	assert_string_equal(t, "127.0.0.1:5000");
	assert_true(chvctl_target_is_tcp(t));
	assert_int_equal(chvctl_check_tls(&o, t, &err), 0);

	char *argv2[] = {"chvctl", "--insecure", "--tls-key", NULL};
	assert_int_equal(chvctl_parse_global(&o, 3, argv2, &idx, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--tls-key"));
	char *argv3[] = {"chvctl", "--tls-ca=", "ping", NULL};
	assert_int_equal(chvctl_parse_global(&o, 3, argv3, &idx, &err), -EINVAL);

	assert_int_equal(chvctl_socket_target("tcp://[::1]:7", t, sizeof(t), &err), 0);
	assert_string_equal(t, "[::1]:7");
	static const char *const bad[] = {"tcp://", "tcp://h", "tcp://:80",
					  "tcp://h:", "tcp://h:80/x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (chvctl_socket_target(bad[i], t, sizeof(t), &err) != -EINVAL)
			fail_msg("socket \"%s\" was accepted", bad[i]);
	assert_false(chvctl_target_is_tcp("unix:/run/chvd/chvd.sock"));
	assert_false(chvctl_target_is_tcp("unix-abstract:chvd"));

	/* Which combinations make sense. */
	struct chvctl_opts c = {0};
	assert_int_equal(chvctl_check_tls(&c, "unix:/x", &err), 0);
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), -EINVAL); /* TCP needs a choice */
	assert_non_null(strstr(err.msg, "--insecure"));
	c.insecure = true;
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), 0);
	assert_int_equal(chvctl_check_tls(&c, "unix:/x", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--insecure"));
	c.tls_ca = "ca";
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "exclude"));
	c.insecure = false;
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), 0); /* the server will refuse */
	assert_int_equal(chvctl_check_tls(&c, "unix:/x", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--tls-ca"));
	c.tls_cert = "c";
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--tls-key"));
	c.tls_cert = NULL;
	c.tls_key = "k";
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--tls-cert"));
	c.tls_cert = "c";
	assert_int_equal(chvctl_check_tls(&c, "h:1", &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr_split_valid),
	    cmocka_unit_test(test_addr_split_malformed),
	    cmocka_unit_test(test_loopback),
	    cmocka_unit_test(test_add_tcp_refusals),
	    cmocka_unit_test(test_insecure_loopback_end_to_end),
	    cmocka_unit_test_setup_teardown(test_tls_client_certificate, tls_up, tls_down),
	    cmocka_unit_test_setup_teardown(test_tls_refuses_bad_clients, tls_up, tls_down),
	    cmocka_unit_test(test_channel_open_tls_args),
	    cmocka_unit_test(test_chvctl_tcp_options),
	};
	/* As chvd and chvctl do: c-ares leaks at exit, which LeakSanitizer
	 * would report. */
	setenv("GRPC_DNS_RESOLVER", "native", 0);
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
