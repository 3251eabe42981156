/*
 * The telemed_auth plugin outside the broker, for AddressSanitizer and UndefinedBehaviorSanitizer
 * (tests/test_broker_plugin.py builds and runs it):
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -DTELEMED_AUTH_HARNESS -g -O1 \
 *       -fsanitize=address,undefined -fno-sanitize-recover=all -o harness \
 *       harness.c telemed_auth.c accounts.c access.c control.c -lcrypto
 *   ./harness <scratch folder> <iterations> <seed>
 *
 * It is linked with the plugin's files (reaching their shared functions through
 * telemed_auth.h) and stands in for the few broker functions the plugin calls. First the cases the plugin must decide in a given way
 * (each prints "ok <case>", or "FAIL <case>" and exits 1); then <iterations> rounds of hostile
 * input: control messages mutated from valid ones (NUL bytes, cut lines, long words, odd
 * whitespace, huge numbers), account files mutated the same way and reloaded, logins with
 * random names and passwords, and random topics through the ACL and message checks. A memory
 * or undefined-behaviour error stops the run with the sanitizer's report.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemed_auth.h"

struct mosquitto {
	const char *id;
	const char *username;
};

static char last_response[1024];
static char last_log[1200];
static int kicks;
static bool verbose;

/* ------------------------------------------------------------------ the broker's side */

void mosquitto_log_printf(int level, const char *fmt, ...)
{
	va_list ap;
	(void)level;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	if(verbose) fprintf(stderr, "log: %s\n", last_log);
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
	return client->id;
}

const char *mosquitto_client_username(const struct mosquitto *client)
{
	return client->username;
}

int mosquitto_kick_client_by_username(const char *username, bool with_will)
{
	(void)username;
	(void)with_will;
	kicks++;
	return 0;
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
		const void *payload, int qos, bool retain, mosquitto_property *properties)
{
	(void)clientid;
	(void)topic;
	(void)qos;
	(void)retain;
	(void)properties;
	if(payloadlen < 0 || (size_t)payloadlen >= sizeof(last_response)) abort();
	memcpy(last_response, payload, (size_t)payloadlen);
	last_response[payloadlen] = '\0';
	return 0;
}

int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event,
		MOSQ_FUNC_generic_callback cb_func, const void *event_data, void *userdata)
{
	(void)identifier;
	(void)event;
	(void)cb_func;
	(void)event_data;
	(void)userdata;
	return 0;
}

int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event,
		MOSQ_FUNC_generic_callback cb_func, const void *event_data)
{
	(void)identifier;
	(void)event;
	(void)cb_func;
	(void)event_data;
	return 0;
}

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static int failures;

static void expect(bool ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	if(!ok) failures++;
}

/* "$7$<iterations>$<salt>$<digest>" for `password`, as mosquitto_passwd writes it. */
static void make_hash(const char *password, int iterations, char *out, size_t cap)
{
	unsigned char salt[12], digest[64], salt64[40], digest64[100];
	for(size_t i = 0; i < sizeof(salt); i++) salt[i] = (unsigned char)rnd();
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof(salt), iterations,
			EVP_sha512(), sizeof(digest), digest);
	EVP_EncodeBlock(salt64, salt, sizeof(salt));
	EVP_EncodeBlock(digest64, digest, sizeof(digest));
	snprintf(out, cap, "$7$%d$%s$%s", iterations, salt64, digest64);
}

static struct mosquitto admin = {"telemed-admin-h1", "telemed-admin"};
static struct mosquitto ingest = {"telemed-ingest-0", "telemed-ingest"};

static void send_control(struct mosquitto *from, const void *payload, uint32_t len)
{
	struct mosquitto_evt_control ed;
	memset(&ed, 0, sizeof(ed));
	ed.client = from;
	ed.topic = CONTROL_TOPIC;
	ed.payload = payload;
	ed.payloadlen = len;
	ed.qos = 1;
	last_response[0] = '\0';
	control(MOSQ_EVT_CONTROL, &ed, NULL);
}

static void send_text(const char *text)
{
	send_control(&admin, text, (uint32_t)strlen(text));
}

static int login(const char *client_id, const char *username, const char *password)
{
	struct mosquitto client = {client_id, username};
	struct mosquitto_evt_basic_auth ed;
	memset(&ed, 0, sizeof(ed));
	ed.client = &client;
	ed.username = (char *)username;
	ed.password = (char *)password;
	return basic_auth(MOSQ_EVT_BASIC_AUTH, &ed, NULL);
}

static int acl(const char *client_id, const char *username, const char *topic, int access, bool retain)
{
	struct mosquitto client = {client_id, username};
	struct mosquitto_evt_acl_check ed;
	memset(&ed, 0, sizeof(ed));
	ed.client = &client;
	ed.topic = topic;
	ed.access = access;
	ed.qos = 1;
	ed.retain = retain;
	return acl_check(MOSQ_EVT_ACL_CHECK, &ed, NULL);
}

static bool has(const char *username)
{
	struct account *a = NULL;
	HASH_FIND_STR(accounts, username, a);
	return a != NULL;
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	if(!f || fwrite(text, 1, len, f) != len){
		perror(path);
		exit(2);
	}
	fclose(f);
}

/* ------------------------------------------------------------------ the decided cases */

static char hash_a[200], hash_b[200], hash_admin[200], hash_ingest[200];
static char replaced_snapshot[4096], replaced_journal[1024];

/* The application replacing both files (a new generation) between the plugin's two reads. */
static void replace_files(void)
{
	write_file(snapshot_path, replaced_snapshot, strlen(replaced_snapshot));
	write_file(journal_path, replaced_journal, strlen(replaced_journal));
	between_reads = NULL;
}

static void decided_cases(const char *dir)
{
	char snapshot[400], journal[400], text[4096], longline[1200];
	struct mosquitto_opt opts[2];
	struct mosquitto stranger = {"dev-a", "dev-a"};

	snprintf(snapshot, sizeof(snapshot), "%s/accounts", dir);
	snprintf(journal, sizeof(journal), "%s/accounts.journal", dir);
	/* A snapshot with a comment line longer than the plugin's buffer whose tail, from the
	 * buffer's end on, reads as a command of its own; and a journal whose last line is still
	 * being written. */
	memset(longline, 'x', MAX_LINE - 1);
	longline[0] = '#';
	strcpy(longline + MAX_LINE - 1, "remove dev-victim");
	snprintf(text, sizeof(text),
			"telemed-accounts 1 g1\nadd admin telemed-admin %s\nadd ingest telemed-ingest %s\n"
			"add device dev-a %s\nadd device dev-victim %s\nadd device dev-victim2 %s\n"
			"%s\nadd device dev-b %s\n",
			hash_admin, hash_ingest, hash_a, hash_b, hash_b, longline, hash_b);
	write_file(snapshot, text, strlen(text));
	snprintf(text, sizeof(text), "telemed-journal 1 g1\nadd device dev-c %s\nremove dev-victim2", hash_b);
	write_file(journal, text, strlen(text));

	opts[0].key = "accounts";
	opts[0].value = snapshot;
	opts[1].key = "journal";
	opts[1].value = journal;
	expect(mosquitto_plugin_init(NULL, NULL, opts, 2) == MOSQ_ERR_SUCCESS, "init");
	expect(has("dev-a") && has("dev-b") && has("dev-c"), "the accounts around a long line are read");
	expect(has("dev-victim"), "a line over the buffer is not read as two lines");
	expect(has("dev-victim2"), "an unfinished last line is not applied");

	/* A journal that cannot be read whole may hold removals: the accounts stay as they were. */
	{
		write_file(journal, "not a journal\nremove dev-a\n", 27);
		expect(load_all(true) != MOSQ_ERR_SUCCESS && has("dev-a") && has("dev-victim"),
				"a journal with a bad first line is not half read");
		snprintf(text, sizeof(text), "telemed-journal 1 g1\nadd device dev-c %s\nremove dev-victim2", hash_b);
		write_file(journal, text, strlen(text));
		expect(load_all(true) == MOSQ_ERR_SUCCESS && has("dev-c") && has("dev-victim2"), "a journal is read again");
	}

	/* Both files replaced between the reads of the snapshot and the journal: read again, not
	 * the old snapshot alone. A journal of an older generation than the snapshot is ignored. */
	{
		char keep_snapshot[4096];
		FILE *f = fopen(snapshot, "rb");
		size_t n = fread(keep_snapshot, 1, sizeof(keep_snapshot) - 1, f);
		fclose(f);
		keep_snapshot[n] = '\0';
		snprintf(replaced_snapshot, sizeof(replaced_snapshot), "%s", keep_snapshot);
		memcpy(replaced_snapshot, "telemed-accounts 1 g2", 21);
		snprintf(replaced_snapshot + strlen(replaced_snapshot), sizeof(replaced_snapshot) - strlen(replaced_snapshot),
				"add device dev-new %s\n", hash_b);
		snprintf(replaced_journal, sizeof(replaced_journal), "telemed-journal 1 g2\nadd device dev-late %s\n", hash_b);
		between_reads = replace_files;
		expect(load_all(true) == MOSQ_ERR_SUCCESS && has("dev-new") && has("dev-late") && has("dev-a"),
				"files replaced between the two reads are read again");
		snprintf(text, sizeof(text), "telemed-journal 1 g1\nremove dev-a\n");
		write_file(journal, text, strlen(text));
		expect(load_all(true) == MOSQ_ERR_SUCCESS && has("dev-a") && has("dev-new") && !has("dev-late"),
				"a journal older than the snapshot is ignored");
		write_file(snapshot, keep_snapshot, n);
		snprintf(text, sizeof(text), "telemed-journal 1 g1\nadd device dev-c %s\nremove dev-victim2", hash_b);
		write_file(journal, text, strlen(text));
		expect(load_all(true) == MOSQ_ERR_SUCCESS && has("dev-c") && !has("dev-new"), "the files as before");
	}

	/* Control messages. */
	send_text("request r1\nremove dev-b");
	expect(!strcmp(last_response, "r1 ok 6") && !has("dev-b"), "a remove applies");
	snprintf(text, sizeof(text), "request r2\nremove dev-a\nadd device dev-b %s\nremove", hash_b);
	send_text(text);
	expect(!strncmp(last_response, "r2 error line 4", 15) && has("dev-a") && !has("dev-b"),
			"a batch with a bad line applies nothing");
	{
		static const char with_nul[] = "request r3\nremove dev-c\0\nremove dev-a";
		send_control(&admin, with_nul, sizeof(with_nul) - 1);
		expect(!strcmp(last_response, "r3 error the message holds a NUL byte") && has("dev-a") && has("dev-c"),
				"a message with a NUL byte is refused whole");
	}
	{
		size_t n = MAX_CONTROL + 1;
		char *big = malloc(n);
		memset(big, '\n', n);
		memcpy(big, "request r4\n", 11);
		send_control(&admin, big, (uint32_t)n);
		expect(!strncmp(last_response, "r4 error the message is over", 28), "a message over the limit is refused");
		/* A length the broker can never hand over (its packets end at 256 MiB): refused before
		 * a byte is read, with no overflow in the length + 1. */
		send_control(&admin, big, UINT32_MAX);
		expect(!strncmp(last_response, "r4 error the message is over", 28), "a length of 2^32 - 1 is refused");
		free(big);
	}
	snprintf(text, sizeof(text), "request r5\nadd device evil %s\nremove dev-a", hash_b);
	send_control(&stranger, text, (uint32_t)strlen(text));
	expect(last_response[0] == '\0' && !has("evil") && has("dev-a"), "a device's control message is ignored");
	send_control(&ingest, text, (uint32_t)strlen(text));
	expect(last_response[0] == '\0' && !has("evil") && has("dev-a"), "the ingest account's control message is ignored");
	snprintf(text, sizeof(text), "request %0100d\nremove dev-a", 7);
	send_text(text);
	expect(!strcmp(last_response, "- error the first line must be 'request <id>'") && has("dev-a"),
			"a request id over 64 characters is refused");
	snprintf(text, sizeof(text), "request r6\nadd device telemed-ingest-0 %s", hash_b);
	send_text(text);
	expect(strstr(last_response, "r6 error") && !has("telemed-ingest-0"), "a device named like an ingest client id is refused");

	/* Logins: a wrong password is never remembered as verified. */
	expect(login("dev-a", "dev-a", "wrong") == MOSQ_ERR_AUTH, "a wrong password is refused");
	{
		struct account *a = NULL;
		HASH_FIND_STR(accounts, "dev-a", a);
		expect(a && !a->has_verified, "a wrong password is not remembered");
	}
	expect(login("dev-a", "dev-a", "pw-a") == MOSQ_ERR_SUCCESS, "the right password is taken");
	expect(login("dev-a", "dev-a", "wrong") == MOSQ_ERR_AUTH, "a wrong one after the right one is refused");
	expect(login("dev-a", "dev-a", "") == MOSQ_ERR_AUTH, "an empty password is refused");
	expect(login("telemed-ingest-0", "dev-a", "pw-a") == MOSQ_ERR_AUTH, "a device under an ingest client id is refused");
	expect(login("dev-a", "telemed-ingest", "pw-ingest") == MOSQ_ERR_AUTH, "the ingest account under a device's id is refused");
	expect(login("telemed-admin-x", "telemed-ingest", "pw-ingest") == MOSQ_ERR_AUTH, "the ingest account under an admin client id is refused");
	expect(login("telemed-ingest-3", "telemed-ingest", "pw-ingest") == MOSQ_ERR_SUCCESS, "the ingest account under its own client id is taken");
	snprintf(text, sizeof(text), "request r7\nadd device dev-a %s", hash_b);
	send_text(text);
	expect(login("dev-a", "dev-a", "pw-a") == MOSQ_ERR_AUTH && login("dev-a", "dev-a", "pw-b") == MOSQ_ERR_SUCCESS,
			"a changed password refuses the old one at once");

	/* Topics. */
	expect(acl("dev-a", "dev-a", CONTROL_TOPIC, MOSQ_ACL_WRITE, false) == MOSQ_ERR_ACL_DENIED, "a device may not write the control topic");
	expect(acl("dev-a", "dev-a", "telemed/v1/devices/dev-c/status", MOSQ_ACL_WRITE, true) == MOSQ_ERR_ACL_DENIED,
			"a device may not write another's status");
	expect(acl("telemed-ingest-0", "telemed-ingest", "telemed/v1/devices/dev-a/readings", MOSQ_ACL_WRITE, false) == MOSQ_ERR_ACL_DENIED,
			"the ingest account may not publish");
	{
		struct mosquitto client = {"dev-a", "dev-a"};
		struct mosquitto_evt_message ed;
		memset(&ed, 0, sizeof(ed));
		ed.client = &client;
		ed.topic = "telemed/v1/devices/dev-a/readings";
		ed.payload = "{}";
		ed.payloadlen = 2;
		ed.retain = true;
		on_message(MOSQ_EVT_MESSAGE, &ed, NULL);
		expect(!ed.retain, "a retained reading is not retained");
		ed.topic = "telemed/v1/devices/dev-a/status";
		ed.retain = true;
		on_message(MOSQ_EVT_MESSAGE, &ed, NULL);
		expect(ed.retain, "a retained status stays retained");
		ed.topic = "telemed/v1/devices/dev-a/readings";
		ed.retain = true;
		ed.payloadlen = 0;
		on_message(MOSQ_EVT_MESSAGE, &ed, NULL);
		expect(ed.retain, "an empty retained reading (a deletion) keeps its flag");
	}
	expect(acl("telemed-ingest-0", "telemed-ingest", "telemed/v1/devices/dev-a/readings", MOSQ_ACL_READ, true) == MOSQ_ERR_ACL_DENIED,
			"a retained reading is not handed to the ingest account");
	expect(acl("telemed-ingest-0", "telemed-ingest", "telemed/v1/devices/dev-a/readings", MOSQ_ACL_READ, false) == MOSQ_ERR_SUCCESS
			&& acl("telemed-ingest-0", "telemed-ingest", "telemed/v1/devices/dev-a/status", MOSQ_ACL_READ, true) == MOSQ_ERR_SUCCESS,
			"readings and retained statuses are");
}

/* ------------------------------------------------------------------ hostile input */

static const char *seeds[8];

static size_t mutate(const char *seed, char *out, size_t cap)
{
	size_t n = strlen(seed), rounds = 1 + below(6);
	static const char alphabet[] = "\0\n\r\t $#+/=-.abcAZ0179request add remove reload device ingest admin";
	memcpy(out, seed, n);
	for(size_t r = 0; r < rounds; r++){
		size_t at = below(n + 1), span = 1 + below(40);
		switch(below(8)){
			case 0: /* flip a byte */
				if(n) out[below(n)] ^= (char)(1u << below(8));
				break;
			case 1: /* insert a byte of the grammar (NUL and newline included) */
				if(n + 1 < cap){
					memmove(out + at + 1, out + at, n - at);
					out[at] = alphabet[below(sizeof(alphabet) - 1)];
					n++;
				}
				break;
			case 2: /* delete a span */
				if(at < n){
					if(span > n - at) span = n - at;
					memmove(out + at, out + at + span, n - at - span);
					n -= span;
				}
				break;
			case 3: /* repeat a span many times: long words and long lines */
				if(at < n){
					size_t times = 1 + below(200);
					if(span > n - at) span = n - at;
					for(size_t t = 0; t < times && n + span < cap; t++){
						memmove(out + at + span, out + at, n - at);
						n += span;
					}
				}
				break;
			case 4: /* splice another seed in */
				{
					const char *other = seeds[below(sizeof(seeds) / sizeof(seeds[0]))];
					size_t m = strlen(other);
					if(n + m < cap){
						memmove(out + at + m, out + at, n - at);
						memcpy(out + at, other, m);
						n += m;
					}
				}
				break;
			case 5: /* cut */
				n = at;
				break;
			case 6: /* a huge number */
				if(n + 24 < cap){
					memmove(out + at + 24, out + at, n - at);
					memcpy(out + at, "999999999999999999999999", 24);
					n += 24;
				}
				break;
			default: /* random bytes */
				for(size_t i = 0; i < span && at + i < n; i++) out[at + i] = (char)rnd();
				break;
		}
	}
	return n;
}

static void hostile(const char *dir, long iterations)
{
	static char buf[1 << 17], topic[1 << 12], text[2048], snapshot[400];
	static const char *topics[] = {
		"telemed/v1/devices/dev-a/readings", "telemed/v1/devices/+/readings",
		"$share/g/telemed/v1/devices/+/readings", "$share//telemed/v1/devices/+/status",
		"$share/g+/telemed/v1/devices/+/readings", "telemed/v1/devices//readings",
		"$CONTROL/telemed-auth/v1", "$CONTROL/telemed-auth/v1/response", "#", "+/+/+",
		"telemed/v1/devices/dev-a/readings/x", "telemed/v1/devices/dev-a",
	};
	static const char *roles[][2] = {
		{"dev-a", "dev-a"}, {"telemed-ingest-0", "telemed-ingest"},
		{"telemed-admin-h1", "telemed-admin"}, {"x", "nobody"},
	};
	snprintf(snapshot, sizeof(snapshot), "%s/accounts", dir);
	snprintf(text, sizeof(text), "telemed-accounts 1 g1\nadd admin telemed-admin %s\nadd device dev-a %s\n", hash_admin, hash_a);
	seeds[0] = "request r\nadd device dev-z $7$101$YWJjZGVmZ2hpamts$YWJjZGVmZ2hpamtsYWJjZGVmZ2hpamtsYWJjZGVmZ2hpamtsYWJjZGVmZ2hpamtsYWJjZGVmZ2hpamtsYWJjZA==";
	seeds[1] = "request r\nremove dev-a\nremove dev-b\nreload";
	seeds[2] = "request r\nadd ingest telemed-ingest $7$2$QUFBQUFBQUFBQUFB$====";
	seeds[3] = "request r\n\n\n  \t\r\nadd admin telemed-admin $7$1$$\nremove";
	seeds[4] = text;
	seeds[5] = "request 0123456789012345678901234567890123456789012345678901234567890123\nreload\nreload";
	seeds[6] = "add device dev-q $7$101$AAAAAAAAAAAAAAAA$AAAA\nrequest r";
	seeds[7] = "telemed-journal 1 g1\nadd device dev-j $7$101$c2FsdHNhbHRzYWx0$ZGlnZXN0\nremove dev-a\n";

	for(long i = 0; i < iterations; i++){
		size_t n = mutate(seeds[below(8)], buf, sizeof(buf));
		switch(i % 8){
			case 0:
			case 1:
			case 2:
				send_control(&admin, buf, (uint32_t)n);
				break;
			case 3: /* an account file, reloaded while live */
				{
					char *path = (i & 8) ? snapshot : journal_path;
					size_t m = mutate(seeds[4 + (i & 8 ? 0 : 3)], buf, sizeof(buf));
					write_file(path, buf, m);
					load_all(true);
					write_file(snapshot, text, strlen(text));
				}
				break;
			case 4: /* a login with a random name and password (none of them has a costly hash) */
				{
					size_t m;
					buf[n] = '\0';
					m = strlen(buf);
					login(m > 1 ? buf + m / 2 : "dev-a", m > 1 ? buf + m / 2 : "dev-a", buf);
				}
				break;
			default: /* a topic through the ACL and the message check */
				{
					const char *(*who)[2] = &roles[below(4)];
					size_t m = mutate(topics[below(sizeof(topics) / sizeof(topics[0]))], topic, sizeof(topic) - 1);
					struct mosquitto client = {(*who)[0], (*who)[1]};
					struct mosquitto_evt_message ed;
					topic[m] = '\0';
					acl((*who)[0], (*who)[1], topic, (int)(1u << below(4)), below(2));
					memset(&ed, 0, sizeof(ed));
					ed.client = &client;
					ed.topic = topic;
					ed.retain = true;
					on_message(MOSQ_EVT_MESSAGE, &ed, NULL);
				}
				break;
		}
		if(i % 64 == 0){
			/* Known accounts back, with cheap hashes, so that logins stay quick. */
			char again[800];
			snprintf(again, sizeof(again), "request k\nadd admin telemed-admin %s\nadd device dev-a %s", hash_admin, hash_a);
			send_text(again);
		}
	}
}

int main(int argc, char **argv)
{
	long iterations;
	if(argc != 4){
		fprintf(stderr, "usage: %s <scratch folder> <iterations> <seed>\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	verbose = getenv("HARNESS_VERBOSE") != NULL;
	iterations = strtol(argv[2], NULL, 10);
	rng_state = strtoull(argv[3], NULL, 10) | 1;
	make_hash("pw-a", 2, hash_a, sizeof(hash_a));
	make_hash("pw-b", 2, hash_b, sizeof(hash_b));
	make_hash("pw-admin", 2, hash_admin, sizeof(hash_admin));
	make_hash("pw-ingest", 2, hash_ingest, sizeof(hash_ingest));
	decided_cases(argv[1]);
	hostile(argv[1], iterations);
	printf("ok %ld hostile inputs, %d kicks\n", iterations, kicks);
	mosquitto_plugin_cleanup(NULL, NULL, 0);
	return failures ? 1 : 0;
}
