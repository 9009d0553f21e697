/*
 * test_daemon.c: the real evcsd binary on loopback ports. Starts it with a
 * config that loads the test plugin, talks to it over real TCP and HTTP, sends
 * SIGHUP and SIGTERM, and reads its log. Also --version, --check-config and a
 * bad config's line-numbered error.
 */
#include "testproc.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef EVCSD_BIN
#error EVCSD_BIN must be defined
#endif

static char dir[256], conf[300], log_path[300];
static int http_port, plug_port;

static int connect_to(int port)
{
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
			struct timeval tv = {5, 0};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			return fd;
		}
		close(fd);
		usleep(20000);
	}
	return -1;
}

/* Read until the peer closes or `want` appears; returns bytes read. */
static size_t read_some(int fd, char *buf, size_t cap, const char *want)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		if (want && strstr(buf, want))
			break;
	}
	buf[n] = 0;
	return n;
}

static int http_get(const char *path, char *out, size_t cap)
{
	int fd = connect_to(http_port);
	if (fd < 0)
		return -1;
	char req[512];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return -1;
	}
	read_some(fd, out, cap, NULL);
	close(fd);
	int status = 0;
	sscanf(out, "HTTP/1.1 %d", &status);
	return status;
}

static void write_conf(const char *greeting, const char *extra)
{
	FILE *f = fopen(conf, "w");
	fprintf(f,
		"[core]\nlog_level = info\nplugin_dir = %s\nshutdown_timeout = 3000\n"
		"[http]\nlisten = 127.0.0.1:%d\n"
		"[plugin testplug]\nfile = tp_good.so\nport = %d\ngreeting = %s\n%s",
		TEST_PLUGIN_DIR, http_port, plug_port, greeting, extra ? extra : "");
	fclose(f);
}

static pid_t start_daemon(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		dup2(fd, 1);
		execl(EVCSD_BIN, "evcsd", "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* the daemon's log has s (polled for 2 s) */
static int log_has(const char *s) { return test_file_has(log_path, s, 100); }

static void test_daemon_lifecycle(void)
{
	write_conf("hello", NULL);
	pid_t pid = start_daemon();
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_TRUE(log_has("ready"));

	char buf[16384];
	CU_ASSERT_EQUAL(http_get("/healthz", buf, sizeof buf), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"status\":\"ready\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"name\":\"testplug\""));

	/* the plugin's TCP listener with buffered line I/O */
	int c = connect_to(plug_port);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(write(c, "PING\nPI", 7) == 7);
	usleep(50000);
	CU_ASSERT(write(c, "NG\n", 3) == 3); /* a line split across two writes */
	read_some(c, buf, sizeof buf, "PONG\nPONG\n");
	CU_ASSERT_STRING_EQUAL(buf, "PONG\nPONG\n");

	/* plugin HTTP route with a query, and 404/405 for the rest */
	CU_ASSERT_EQUAL(http_get("/testplug/hello?who=evcs", buf, sizeof buf), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"hello\":\"evcs\"}"));
	CU_ASSERT_EQUAL(http_get("/nosuch", buf, sizeof buf), 404);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"code\":\"not_found\""));

	/* metrics: Prometheus text with core and plugin metrics */
	CU_ASSERT_EQUAL(http_get("/metrics", buf, sizeof buf), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "# TYPE evcs_connections gauge\nevcs_connections 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "evcs_testplug_lines_total 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "evcs_plugin_up{plugin=\"testplug\",version=\"1.2.3\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "evcs_bus_events_total{event=\"pile_online\"} 0\n"));

	/* SIGHUP: the plugin sees the new value, the connection stays up */
	write_conf("bonjour", NULL);
	kill(pid, SIGHUP);
	CU_ASSERT_TRUE(log_has("reloaded greeting=bonjour"));
	CU_ASSERT_TRUE(log_has("configuration reloaded"));
	CU_ASSERT(write(c, "PING\n", 5) == 5);
	read_some(c, buf, sizeof buf, "PONG\n");
	CU_ASSERT_STRING_EQUAL(buf, "PONG\n");

	/* a broken file on SIGHUP is refused with its line, the old config stays */
	FILE *f = fopen(conf, "w");
	fprintf(f, "[core]\nbogus_key = 1\n");
	fclose(f);
	kill(pid, SIGHUP);
	CU_ASSERT_TRUE(log_has("reload refused, keeping the running configuration"));
	CU_ASSERT_TRUE(log_has(":2: unknown key 'bogus_key' in [core]"));
	CU_ASSERT_EQUAL(http_get("/healthz", buf, sizeof buf), 200);

	/* SIGTERM: the open connection is closed, plugins cleaned up, exit 0 */
	kill(pid, SIGTERM);
	size_t n = read_some(c, buf, sizeof buf, NULL); /* returns at EOF */
	CU_ASSERT_EQUAL(n, 0);
	close(c);
	CU_ASSERT_EQUAL(test_wait_exit(pid, 10), 0);
	CU_ASSERT_TRUE(log_has("testplug cleanup"));
	CU_ASSERT_TRUE(log_has("[core] stopped"));
}

static int run(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s 2>&1", EVCSD_BIN, args);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_flags(void)
{
	char out[8192], args[512];
	CU_ASSERT_EQUAL(run("--version", out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "evcsd 0."));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugin ABI 2."));
	CU_ASSERT_EQUAL(run("--help", out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--check-config"));
	CU_ASSERT_EQUAL(run("--bogus", out, sizeof out), 2);

	write_conf("x", NULL);
	snprintf(args, sizeof args, "--check-config -c %s", conf);
	CU_ASSERT_EQUAL(run(args, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "configuration OK"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugin testplug 1.2.3 (ABI 2.0)"));

	write_conf("x", "[plugin other]\nfile = tp_wrong_abi.so\n");
	CU_ASSERT_EQUAL(run(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "built for plugin ABI 99.0"));

	FILE *f = fopen(conf, "w");
	fprintf(f, "[core]\nlog_level = info\n\n[http]\nlisten 127.0.0.1:1\n");
	fclose(f);
	CU_ASSERT_EQUAL(run(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ":5: expected 'key = value'"));

	/* the daemon refuses to start on a bad file, and says where */
	snprintf(args, sizeof args, "-f -c %s", conf);
	CU_ASSERT_EQUAL(run(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ":5: expected 'key = value'"));
	/* a required plugin that fails stops the daemon */
	write_conf("x", "[plugin broken]\nfile = tp_fail_init.so\n");
	CU_ASSERT_EQUAL(run(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "init failed"));
}

static int sh(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* evcsctl against the running daemon, offline, and with a plugin subcommand */
static void test_evcsctl(void)
{
	write_conf("ctl", NULL);
	pid_t pid = start_daemon();
	CU_ASSERT_TRUE_FATAL(log_has("ready"));
	char cmd[1024], out[16384];
	snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d health 2>&1", EVCSCTL_BIN, http_port);
	/* the log line matched above may be "not ready" (start-up): allow a loaded machine up to
	 * 5 s to become ready, as a probe would */
	int hst = -1;
	for (int i = 0; i < 50 && (hst = sh(cmd, out, sizeof out)) != 0; i++)
		usleep(100000);
	CU_ASSERT_EQUAL(hst, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"status\": \"ready\""));
	snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d metrics 2>&1", EVCSCTL_BIN, http_port);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "evcs_plugin_up{plugin=\"testplug\""));
	/* a route that does not exist: non-zero exit, JSON error printed */
	snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d api GET /nowhere 2>&1", EVCSCTL_BIN, http_port);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "not_found"));
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(test_wait_exit(pid, 10), 0);
	/* daemon gone: a clear error, exit 1 */
	snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d health 2>&1", EVCSCTL_BIN, http_port);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot reach"));

	snprintf(cmd, sizeof cmd, "%s config check %s 2>&1", EVCSCTL_BIN, conf);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	FILE *f = fopen(conf, "w");
	fprintf(f, "[http]\nlisten = 1.2.3.4:5\nlisten = 1.2.3.4:6\n");
	fclose(f);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ":3: duplicate key 'listen' (first at line 2)"));

	snprintf(cmd, sizeof cmd, "EVCS_PLUGIN_DIR=%s %s testplug echo hello plugin 2>&1", TEST_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "hello plugin\n");
	/* a relative plugin directory works as well */
	snprintf(cmd, sizeof cmd, "cd %s/.. && EVCS_PLUGIN_DIR=.libs %s testplug echo rel 2>&1", TEST_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "rel\n");
#ifdef YKC_PLUGIN_DIR
	/* the YKC plugin's subcommand: the reference's own example frame and stream */
	snprintf(cmd, sizeof cmd, "EVCS_PLUGIN_DIR=%s %s ykc decode '68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8' 2>&1",
		 YKC_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":\"pile->platform\","
				    "\"seq_hex\":\"0700\",\"encrypted\":false,\"crc_ok\":true,\"crc_order\":\"le\","
				    "\"body_length\":9,\"fields\":{\"pile\":\"32010600019236\",\"gun\":\"01\",\"gun_state\":0}}\n");
	snprintf(cmd, sizeof cmd, "echo 'FF 00 680D0700000332010600019236 0100E2E8 680D070000' | EVCS_PLUGIN_DIR=%s %s ykc split 2>&1",
		 YKC_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"skipped_bytes\":2,\"leftover_bytes\":5,\"leftover_hex\":\"680D070000\"}"));
	snprintf(cmd, sizeof cmd, "EVCS_PLUGIN_DIR=%s %s ykc decode 6802 2>/dev/null", YKC_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"error\":\"truncated\""));
#endif
	snprintf(cmd, sizeof cmd, "EVCS_PLUGIN_DIR=%s %s plugins 2>&1", TEST_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "evcsctl testplug"));
	snprintf(cmd, sizeof cmd, "EVCS_PLUGIN_DIR=%s %s nosuchthing 2>&1", TEST_PLUGIN_DIR, EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown command 'nosuchthing'"));
	snprintf(cmd, sizeof cmd, "%s --help 2>&1", EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	snprintf(cmd, sizeof cmd, "%s piles --help 2>&1", EVCSCTL_BIN);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "evcsctl piles list"));
}

/* TLS on the core's HTTP server, with a throw-away self-signed certificate */
static void test_tls(void)
{
	char cmd[1024], out[8192], cert[320], key[320];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
		 "-keyout %s -out %s >/dev/null 2>&1", key, cert);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	FILE *f = fopen(conf, "w");
	fprintf(f, "[core]\nlog_level = info\n[http]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n",
		http_port, cert, key);
	fclose(f);
	pid_t pid = start_daemon();
	CU_ASSERT_TRUE_FATAL(log_has("(TLS)"));
	snprintf(cmd, sizeof cmd, "curl -s --cacert %s https://127.0.0.1:%d/healthz", cert, http_port);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"status\":\"ready\""));
	/* plain HTTP on the TLS port gets nothing useful */
	snprintf(cmd, sizeof cmd, "curl -s -m 3 http://127.0.0.1:%d/healthz", http_port);
	sh(cmd, out, sizeof out);
	CU_ASSERT_PTR_NULL(strstr(out, "ready"));
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(test_wait_exit(pid, 10), 0);
	/* a key that does not match is refused at start with a clear reason */
	f = fopen(conf, "w");
	fprintf(f, "[http]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n", http_port, cert, conf);
	fclose(f);
	snprintf(cmd, sizeof cmd, "%s -f -c %s 2>&1", EVCSD_BIN, conf);
	CU_ASSERT_EQUAL(sh(cmd, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "TLS certificate/key"));
	unlink(cert);
	unlink(key);
}

static int setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/evcs-test-daemon-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(conf, sizeof conf, "%s/evcsd.conf", dir);
	snprintf(log_path, sizeof log_path, "%s/evcsd.log", dir);
	http_port = test_free_port();
	plug_port = test_free_port();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown(void)
{
	unlink(conf);
	unlink(log_path);
	rmdir(dir);
	return 0;
}

static void reg(void)
{
	CU_pSuite s = CU_add_suite("daemon", setup, teardown);
	EVCS_ADD(s, test_daemon_lifecycle);
	EVCS_ADD(s, test_cli_flags);
	EVCS_ADD(s, test_evcsctl);
	EVCS_ADD(s, test_tls);
}

EVCS_TEST_MAIN(reg)
