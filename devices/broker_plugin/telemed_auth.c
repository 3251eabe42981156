/*
 * telemed_auth: the device registry's view inside Mosquitto 2.0 (plugin API v5).
 *
 * Who may log in, under which client id, and what each account may publish and subscribe to,
 * for three kinds of account:
 *
 *   device  logs in with its own id as username AND client id; may publish only to
 *           telemed/v1/devices/<id>/readings and .../status; may subscribe to nothing.
 *   ingest  the workers' account; may subscribe to telemed/v1/devices/+/readings and
 *           .../status, plainly or as $share/<group>/..., and read those; may publish nothing.
 *           Client ids telemed-ingest-* belong to this kind alone.
 *   admin   the application's control account; client ids telemed-admin-*; may publish only
 *           to $CONTROL/telemed-auth/v1, where it adds and removes accounts at run time.
 *
 * Accounts come from two files the application writes (devices/broker.py): a snapshot of all
 * accounts and a journal of the changes since, both read at start and on `reload`. A change
 * costs the broker one hash-table update: nothing is rewritten per change, so provisioning and
 * revoking never pause the broker for the other clients. Removing an account disconnects its
 * connections at once.
 *
 * Passwords are Mosquitto's PBKDF2-SHA512 hashes ($7$<iterations>$<salt>$<digest>); after a
 * successful check a SHA-256 of the password is kept, so that reconnects and the re-check of
 * every connected client on SIGHUP do not repeat the PBKDF2.
 *
 * Control messages (QoS 1 to $CONTROL/telemed-auth/v1), one command per line:
 *   request <id>                          first line; the answer goes to the sender's client id
 *   add <device|ingest|admin> <username> <hash>
 *   remove <username>
 *   reload                                reread the snapshot and the journal
 * The answer, on $CONTROL/telemed-auth/v1/response: "<id> ok <accounts>" or "<id> error <why>".
 * A batch is checked whole (and its memory taken) before any line of it is applied; a message
 * over MAX_CONTROL bytes or holding a NUL byte is refused whole. Only a connection of the admin
 * account is heard; anyone else's message on the control topic is refused and logged (the
 * broker's ACL check already refuses it before it gets here).
 *
 * A reading published with the retain flag is delivered as any other but not retained: the
 * contract's readings are not retained messages, and a retained one would be handed to every
 * later subscriber again (shared ones too, in Mosquitto 2.0.11). A retained reading the broker
 * holds anyway (kept from before, or a device's retained last will) is never handed to the
 * ingest account, and logged; an empty retained message from the device deletes it.
 *
 * Account files are read line by line into a fixed buffer: a line longer than MAX_LINE, or
 * holding a NUL byte, is refused whole (never read as two lines), and a last line without its
 * newline (an append still being written) is left for the next read.
 *
 * Mosquitto 2.0 calls every callback from its one main thread (a SIGHUP only sets a flag that
 * the main loop acts on), so the table needs no lock.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uthash.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define CONTROL_TOPIC "$CONTROL/telemed-auth/v1"
#define RESPONSE_TOPIC "$CONTROL/telemed-auth/v1/response"
#define INGEST_PREFIX "telemed-ingest-"
#define ADMIN_PREFIX "telemed-admin-"
#define DEVICE_TOPICS "telemed/v1/devices/"
#define MAX_LINE 512
#define MAX_LINE_TEXT "511"
#define MAX_NAME 64
/* One control message at most (the broker's message_size_limit is lower still). */
#define MAX_CONTROL (4u << 20)
/* Characters of a client-given string (topic, client id, username) quoted in a log line. */
#define QUOTE "200"

enum role { ROLE_NONE = 0, ROLE_DEVICE, ROLE_INGEST, ROLE_ADMIN };

struct account {
	UT_hash_handle hh;
	char username[MAX_NAME + 1];
	enum role role;
	int iterations;
	unsigned char salt[64];
	int salt_len;
	unsigned char digest[64];
	unsigned char verified[32]; /* SHA-256 of the last password that passed */
	bool has_verified;
};

struct command {
	enum { CMD_ADD, CMD_REMOVE, CMD_RELOAD } kind;
	struct account acc;
};

static mosquitto_plugin_id_t *plugin_id;
static struct account *accounts;
static char *snapshot_path;
static char *journal_path;

/* ------------------------------------------------------------------ parsing */

static const char *role_name(enum role r)
{
	switch(r){
		case ROLE_DEVICE: return "device";
		case ROLE_INGEST: return "ingest";
		case ROLE_ADMIN: return "admin";
		default: return "none";
	}
}

static enum role parse_role(const char *s)
{
	if(!strcmp(s, "device")) return ROLE_DEVICE;
	if(!strcmp(s, "ingest")) return ROLE_INGEST;
	if(!strcmp(s, "admin")) return ROLE_ADMIN;
	return ROLE_NONE;
}

/* A username goes into topics and log lines: letters, digits, . _ - only, 1-64 of them. */
static bool valid_username(const char *s)
{
	size_t n = strlen(s);
	if(n == 0 || n > MAX_NAME) return false;
	for(size_t i = 0; i < n; i++){
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			|| c == '.' || c == '_' || c == '-';
		if(!ok) return false;
	}
	return true;
}

static int b64_decode(const char *in, unsigned char *out, int max)
{
	size_t n = strlen(in);
	unsigned char buf[128];
	int len, pad = 0;
	if(n == 0 || n % 4 || n > 88) return -1;
	len = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if(len < 0) return -1;
	if(in[n - 1] == '=') pad++;
	if(in[n - 2] == '=') pad++;
	len -= pad;
	if(len > max) return -1;
	memcpy(out, buf, (size_t)len);
	return len;
}

/* "$7$<iterations>$<b64 salt>$<b64 digest>" */
static bool parse_hash(const char *text, struct account *acc)
{
	char copy[256], *it, *salt, *digest, *end;
	long iterations;
	if(strlen(text) >= sizeof(copy) || strncmp(text, "$7$", 3)) return false;
	strcpy(copy, text + 3);
	it = copy;
	salt = strchr(it, '$');
	if(!salt) return false;
	*salt++ = '\0';
	digest = strchr(salt, '$');
	if(!digest) return false;
	*digest++ = '\0';
	iterations = strtol(it, &end, 10);
	if(*end || iterations < 1 || iterations > 10000000) return false;
	acc->iterations = (int)iterations;
	acc->salt_len = b64_decode(salt, acc->salt, sizeof(acc->salt));
	if(acc->salt_len < 8) return false;
	return b64_decode(digest, acc->digest, sizeof(acc->digest)) == 64;
}

/* One command line; `why` gets the reason when it is not one. */
static bool parse_command(char *line, struct command *cmd, const char **why)
{
	char *words[5];
	int n = 0;
	char *save = NULL, *w;
	for(w = strtok_r(line, " \t\r", &save); w && n < 5; w = strtok_r(NULL, " \t\r", &save)){
		words[n++] = w;
	}
	memset(cmd, 0, sizeof(*cmd));
	if(n == 1 && !strcmp(words[0], "reload")){
		cmd->kind = CMD_RELOAD;
		return true;
	}
	if(n == 2 && !strcmp(words[0], "remove")){
		cmd->kind = CMD_REMOVE;
		if(!valid_username(words[1])){ *why = "not a username"; return false; }
		strcpy(cmd->acc.username, words[1]);
		return true;
	}
	if(n == 4 && !strcmp(words[0], "add")){
		cmd->kind = CMD_ADD;
		cmd->acc.role = parse_role(words[1]);
		if(cmd->acc.role == ROLE_NONE){ *why = "unknown role"; return false; }
		if(!valid_username(words[2])){ *why = "not a username"; return false; }
		strcpy(cmd->acc.username, words[2]);
		if(cmd->acc.role == ROLE_DEVICE && (!strncmp(words[2], INGEST_PREFIX, strlen(INGEST_PREFIX))
					|| !strncmp(words[2], ADMIN_PREFIX, strlen(ADMIN_PREFIX)))){
			/* A device's username is its client id: never one of the reserved ones. */
			*why = "a device may not be named like a service client id";
			return false;
		}
		if(!parse_hash(words[3], &cmd->acc)){ *why = "not a $7$ password hash"; return false; }
		return true;
	}
	*why = "unknown command";
	return false;
}

/* ------------------------------------------------------------------ the table */

static void kick(const char *username, const char *why)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "telemed_auth: disconnecting %s (%s)", username, why);
	mosquitto_kick_client_by_username(username, true);
}

static void apply(struct account **table, const struct command *cmd, struct account *made, bool live)
{
	struct account *found = NULL;
	HASH_FIND_STR(*table, cmd->acc.username, found);
	if(cmd->kind == CMD_REMOVE){
		if(found){
			HASH_DEL(*table, found);
			free(found);
			if(live) kick(cmd->acc.username, "account removed");
		}
		return;
	}
	if(found){
		bool changed = found->role != cmd->acc.role || found->iterations != cmd->acc.iterations
			|| found->salt_len != cmd->acc.salt_len
			|| memcmp(found->salt, cmd->acc.salt, (size_t)cmd->acc.salt_len)
			|| memcmp(found->digest, cmd->acc.digest, sizeof(found->digest));
		if(!changed){
			free(made);
			return;
		}
		HASH_DEL(*table, found);
		free(found);
		if(live) kick(cmd->acc.username, "password or kind changed");
	}
	*made = cmd->acc;
	made->has_verified = false;
	HASH_ADD_STR(*table, username, made);
}

static void free_table(struct account **table)
{
	struct account *a, *tmp;
	HASH_ITER(hh, *table, a, tmp){
		HASH_DEL(*table, a);
		free(a);
	}
}

/* The next line of `f` into `buf` (without its newline); false at the end of the file. A line
 * that does not fit `cap` - 1 bytes is read to its end and marked `too_long`; one holding a
 * NUL byte is marked `has_nul`; the file's last line without a newline is marked `unfinished`. */
static bool read_line(FILE *f, char *buf, size_t cap, bool *too_long, bool *has_nul, bool *unfinished)
{
	size_t n = 0;
	int c;
	*too_long = *has_nul = *unfinished = false;
	while((c = getc(f)) != EOF && c != '\n'){
		if(c == '\0') *has_nul = true;
		if(n + 1 < cap) buf[n++] = (char)c;
		else *too_long = true;
	}
	buf[n] = '\0';
	if(c == EOF){
		if(n == 0 && !*too_long && !*has_nul) return false;
		*unfinished = true;
	}
	return true;
}

#define NO_FILE -2
#define OTHER_GENERATION -3

/* Reads `path` (first line "<magic> 1 <generation>") into `table`; the file's generation into
 * `generation` (at most 64 characters). Returns lines applied, NO_FILE, OTHER_GENERATION when
 * `want_generation` is given and the file's is another (nothing is read then), or -1 when it
 * cannot be read whole. */
static long load_file(const char *path, const char *magic, struct account **table,
		char *generation, const char *want_generation)
{
	FILE *f = fopen(path, "r");
	char line[MAX_LINE], head[80], ver[8], gen[65];
	long count = 0, lineno = 1;
	bool too_long, has_nul, unfinished;
	struct command cmd;
	struct account *made;
	const char *why = NULL;
	if(!f){
		if(errno == ENOENT){
			mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: there is no %s", path);
			return NO_FILE;
		}
		mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if(!read_line(f, line, sizeof(line), &too_long, &has_nul, &unfinished) || too_long || has_nul
			|| unfinished || sscanf(line, "%79s %7s %64s", head, ver, gen) != 3
			|| strcmp(head, magic) || strcmp(ver, "1")){
		mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: %s does not start with '%s 1 <generation>'", path, magic);
		fclose(f);
		return -1;
	}
	if(generation) strcpy(generation, gen);
	if(want_generation && strcmp(gen, want_generation)){
		fclose(f);
		return OTHER_GENERATION;
	}
	while(read_line(f, line, sizeof(line), &too_long, &has_nul, &unfinished)){
		lineno++;
		if(unfinished){
			/* The application appends a line with its newline; without one it is still being
			 * written, and the change reaches the broker by its control message anyway. */
			mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: %s line %ld has no newline yet: ignored", path, lineno);
			break;
		}
		if(too_long || has_nul){
			mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: %s line %ld: %s: ignored", path, lineno,
					too_long ? "longer than " MAX_LINE_TEXT " bytes" : "holds a NUL byte");
			continue;
		}
		if(line[0] == '\0' || line[0] == '#') continue;
		if(!parse_command(line, &cmd, &why) || cmd.kind == CMD_RELOAD){
			mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: %s line %ld: %s", path, lineno, why ? why : "reload in a file");
			continue;
		}
		made = NULL;
		if(cmd.kind == CMD_ADD && !(made = malloc(sizeof(*made)))){
			mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: out of memory reading %s", path);
			fclose(f);
			return -1;
		}
		apply(table, &cmd, made, false);
		count++;
	}
	if(ferror(f)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: reading %s failed", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return count;
}

/* The generation on the first line of `path`, into `generation`; false when unreadable. */
static bool generation_of(const char *path, char *generation)
{
	FILE *f = fopen(path, "r");
	char line[MAX_LINE], head[80], ver[8];
	bool too_long, has_nul, unfinished, ok;
	if(!f) return false;
	ok = read_line(f, line, sizeof(line), &too_long, &has_nul, &unfinished) && !too_long
		&& !has_nul && sscanf(line, "%79s %7s %64s", head, ver, generation) == 3;
	fclose(f);
	return ok;
}

#ifdef TELEMED_AUTH_HARNESS
/* The harness's way in between the two reads below, to rewrite the files there. */
static void (*between_reads)(void);
#endif

/* Snapshot, then the journal of the same generation. Kicks what the new table drops or
 * changes when `live`. The table is replaced only when the snapshot could be read.
 *
 * The application writes a new snapshot, then a new journal, each by a rename. A journal of
 * another generation is older than the snapshot (its changes are in the snapshot: ignored) or
 * newer (both files were replaced between our two reads: read both again). */
static int load_all(bool live)
{
	struct account *fresh = NULL, *a, *tmp, *now;
	char generation[65] = "", journal_generation[65] = "", again[65] = "";
	long n = 0;
	if(!snapshot_path) return MOSQ_ERR_INVAL;
	for(int attempt = 0; ; attempt++){
		if(load_file(snapshot_path, "telemed-accounts", &fresh, generation, NULL) < 0){
			free_table(&fresh);
			return MOSQ_ERR_INVAL;
		}
#ifdef TELEMED_AUTH_HARNESS
		if(between_reads) between_reads();
#endif
		if(!journal_path) break;
		/* No journal is no change since the snapshot (the application writes the snapshot
		 * first). One that cannot be read may hold removals: without them a revoked device
		 * would be let in again, so then nothing is loaded. */
		n = load_file(journal_path, "telemed-journal", &fresh, journal_generation, generation);
		if(n == -1){
			mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: accounts not loaded: the journal cannot be read");
			free_table(&fresh);
			return MOSQ_ERR_INVAL;
		}
		if(n != OTHER_GENERATION) break;
		if(attempt < 3 && generation_of(snapshot_path, again) && strcmp(again, generation)){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "telemed_auth: the account files were replaced while read: reading them again");
			free_table(&fresh);
			continue;
		}
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: %s belongs to generation %s, not %s: ignored (the snapshot holds its changes)",
				journal_path, journal_generation, generation);
		break;
	}
	if(n > 0) mosquitto_log_printf(MOSQ_LOG_INFO, "telemed_auth: %ld journal entries applied", n);
	if(live){
		HASH_ITER(hh, accounts, a, tmp){
			HASH_FIND_STR(fresh, a->username, now);
			if(!now) kick(a->username, "account removed");
			else if(now->role != a->role || memcmp(now->digest, a->digest, sizeof(a->digest))) kick(a->username, "password or kind changed");
			else if(a->has_verified){
				memcpy(now->verified, a->verified, sizeof(a->verified));
				now->has_verified = true;
			}
		}
	}
	free_table(&accounts);
	accounts = fresh;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "telemed_auth: %u accounts loaded (generation %s)", HASH_COUNT(accounts), generation);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------ callbacks */

static bool password_ok(struct account *acc, const char *password)
{
	unsigned char quick[32], digest[64];
	unsigned int quick_len = 0;
	bool ok;
	EVP_Digest(password, strlen(password), quick, &quick_len, EVP_sha256(), NULL);
	if(acc->has_verified && CRYPTO_memcmp(quick, acc->verified, sizeof(quick)) == 0) return true;
	if(!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), acc->salt, acc->salt_len,
				acc->iterations, EVP_sha512(), sizeof(digest), digest)){
		return false;
	}
	ok = CRYPTO_memcmp(digest, acc->digest, sizeof(digest)) == 0;
	if(ok){
		memcpy(acc->verified, quick, sizeof(quick));
		acc->has_verified = true;
	}
	return ok;
}

static bool starts_with(const char *s, const char *prefix)
{
	return s && !strncmp(s, prefix, strlen(prefix));
}

static int basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	struct account *acc = NULL, *other = NULL;
	const char *refusal = NULL;
	(void)event;
	(void)userdata;

	if(!ed->username || !ed->password){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "telemed_auth: refused a login without %s (client id %." QUOTE "s)",
				ed->username ? "a password" : "a username", client_id ? client_id : "(none)");
		return MOSQ_ERR_AUTH;
	}
	HASH_FIND_STR(accounts, ed->username, acc);
	if(!acc || !password_ok(acc, ed->password)){
		/* Usernames and client ids are UTF-8 without control characters (the broker checks):
		 * quoted shortened, they cannot forge a log line. */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "telemed_auth: refused login %." QUOTE "s (client id %." QUOTE "s): %s",
				ed->username, client_id ? client_id : "(none)", acc ? "wrong password" : "no such account");
		return MOSQ_ERR_AUTH;
	}
	if(client_id) HASH_FIND_STR(accounts, client_id, other);
	if(!client_id) refusal = "no client id";
	else if(acc->role == ROLE_DEVICE && strcmp(client_id, acc->username)) refusal = "a device must use its own id as client id";
	else if(acc->role != ROLE_INGEST && starts_with(client_id, INGEST_PREFIX)) refusal = "client ids telemed-ingest-* belong to the ingest account";
	else if(acc->role != ROLE_ADMIN && starts_with(client_id, ADMIN_PREFIX)) refusal = "client ids telemed-admin-* belong to the admin account";
	else if(acc->role == ROLE_ADMIN && !starts_with(client_id, ADMIN_PREFIX)) refusal = "the admin account uses client ids telemed-admin-*";
	else if(other && other != acc) refusal = "the client id is another account's name";
	if(refusal){
		/* A takeover attempt by someone who holds a valid login: say who. */
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: refused client id %." QUOTE "s for %s %s: %s",
				client_id ? client_id : "(none)", role_name(acc->role), acc->username, refusal);
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

/* `filter` (no $share prefix) is telemed/v1/devices/<one level or +>/<readings|status>. */
static bool device_filter(const char *filter, bool wildcards)
{
	const char *level, *slash;
	size_t n;
	if(!starts_with(filter, DEVICE_TOPICS)) return false;
	level = filter + strlen(DEVICE_TOPICS);
	slash = strchr(level, '/');
	if(!slash || slash == level) return false;
	n = (size_t)(slash - level);
	if(memchr(level, '#', n)) return false;
	if(memchr(level, '+', n) && !(wildcards && n == 1)) return false;
	return !strcmp(slash + 1, "readings") || !strcmp(slash + 1, "status");
}

static bool ingest_subscription(const char *sub)
{
	const char *group, *slash;
	if(starts_with(sub, "$share/")){
		group = sub + strlen("$share/");
		slash = strchr(group, '/');
		if(!slash || slash == group) return false;
		if(memchr(group, '+', (size_t)(slash - group)) || memchr(group, '#', (size_t)(slash - group))) return false;
		return device_filter(slash + 1, true);
	}
	return device_filter(sub, true);
}

static bool own_topic(const char *username, const char *topic)
{
	size_t prefix = strlen(DEVICE_TOPICS), n = strlen(username);
	if(strncmp(topic, DEVICE_TOPICS, prefix) || strncmp(topic + prefix, username, n)) return false;
	topic += prefix + n;
	return !strcmp(topic, "/readings") || !strcmp(topic, "/status");
}

/* telemed/v1/devices/<one level>/readings */
static bool readings_topic(const char *topic)
{
	const char *level, *slash;
	if(!starts_with(topic, DEVICE_TOPICS)) return false;
	level = topic + strlen(DEVICE_TOPICS);
	slash = strchr(level, '/');
	return slash && slash != level && !strcmp(slash + 1, "readings");
}

static int acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const char *username = mosquitto_client_username(ed->client);
	struct account *acc = NULL;
	bool allowed = false;
	(void)event;
	(void)userdata;

	if(username) HASH_FIND_STR(accounts, username, acc);
	if(!acc) return MOSQ_ERR_ACL_DENIED; /* also a connection whose account was removed */
	switch(acc->role){
		case ROLE_DEVICE:
			allowed = (ed->access == MOSQ_ACL_WRITE && own_topic(acc->username, ed->topic))
				|| ed->access == MOSQ_ACL_UNSUBSCRIBE;
			break;
		case ROLE_INGEST:
			if(ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_UNSUBSCRIBE){
				allowed = ingest_subscription(ed->topic);
			}else if(ed->access == MOSQ_ACL_READ){
				/* A retained reading (one kept from before this plugin cleared the flag, or a
				 * device's retained last will) would be handed to every new subscription,
				 * shared ones too in Mosquitto 2.0.11: never to the workers. */
				allowed = device_filter(ed->topic, false) && !(ed->retain && readings_topic(ed->topic));
				if(!allowed){
					mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: not handing the retained reading on %." QUOTE "s to %." QUOTE "s: readings are not retained (a device clears it by publishing an empty retained message there)",
							ed->topic, mosquitto_client_id(ed->client));
				}
			}
			break;
		case ROLE_ADMIN:
			allowed = (ed->access == MOSQ_ACL_WRITE && !strcmp(ed->topic, CONTROL_TOPIC))
				|| (ed->access == MOSQ_ACL_READ && !strcmp(ed->topic, RESPONSE_TOPIC));
			break;
		default:
			break;
	}
	if(!allowed && (ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_WRITE)){
		/* A publish refused here is also a will refused when it would be sent. */
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: refused %s %." QUOTE "s for %s %s (client id %." QUOTE "s)",
				ed->access == MOSQ_ACL_SUBSCRIBE ? "subscription" : "publish to",
				ed->topic, role_name(acc->role), acc->username, mosquitto_client_id(ed->client));
	}
	return allowed ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

/* Every accepted publish, after the ACL check: a reading is never kept as a retained message.
 * An empty retained message keeps its flag: it deletes what is retained on the topic. */
static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	(void)event;
	(void)userdata;
	if(ed->retain && ed->payloadlen > 0 && readings_topic(ed->topic)) ed->retain = false;
	return MOSQ_ERR_SUCCESS;
}

static void respond(const char *client_id, const char *request, const char *text)
{
	char out[600];
	int n = snprintf(out, sizeof(out), "%s %s", request, text);
	if(n < 0) return;
	if(n >= (int)sizeof(out)) n = (int)sizeof(out) - 1;
	mosquitto_broker_publish_copy(client_id, RESPONSE_TOPIC, n, out, 1, false, NULL);
}

/* "request <id>": the id into `request`. */
static bool parse_request(char *line, char *request)
{
	char *save = NULL, *word = strtok_r(line, " \t\r", &save), *id;
	if(!word || strcmp(word, "request")) return false;
	id = strtok_r(NULL, " \t\r", &save);
	if(!id || strtok_r(NULL, " \t\r", &save) || !valid_username(id)) return false;
	strcpy(request, id);
	return true;
}

/* The request id of a message refused whole, so that the sender still gets its answer. */
static void peek_request(const char *payload, size_t len, char *request)
{
	char first[MAX_NAME + 16];
	const char *end = memchr(payload, '\n', len < sizeof(first) ? len : sizeof(first));
	size_t n = end ? (size_t)(end - payload) : len;
	if(n >= sizeof(first) || memchr(payload, '\0', n)) return;
	memcpy(first, payload, n);
	first[n] = '\0';
	if(!parse_request(first, request)) strcpy(request, "-");
}

static bool blank(const char *line)
{
	return line[strspn(line, " \t\r")] == '\0';
}

static int control(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	const char *username = mosquitto_client_username(ed->client);
	struct account *sender = NULL;
	char *text = NULL, *line, *next, request[MAX_NAME + 1] = "-", why[200] = "";
	struct command *cmds = NULL;
	struct account **made = NULL;
	size_t count = 0, cap = 0, applied = 0;
	long lineno = 0;
	bool reload = false, bad = false;
	(void)event;
	(void)userdata;

	if(username) HASH_FIND_STR(accounts, username, sender);
	if(!sender || sender->role != ROLE_ADMIN){
		/* The broker's ACL check refuses this before it gets here; should it ever not, no one
		 * but the admin account changes an account, and there is no answer to listen for. */
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: control message from %." QUOTE "s (client id %." QUOTE "s) ignored: not the admin account",
				username ? username : "(no username)", client_id ? client_id : "(none)");
		return MOSQ_ERR_SUCCESS;
	}
	if(ed->payloadlen > MAX_CONTROL){
		peek_request(ed->payload, MAX_CONTROL, request);
		snprintf(why, sizeof(why), "error the message is over %u bytes", MAX_CONTROL);
		bad = true;
	}else if(ed->payloadlen && memchr(ed->payload, '\0', ed->payloadlen)){
		/* Read as text it would end at the NUL, and the lines after it would vanish unsaid. */
		peek_request(ed->payload, ed->payloadlen, request);
		snprintf(why, sizeof(why), "error the message holds a NUL byte");
		bad = true;
	}else if(!(text = malloc((size_t)ed->payloadlen + 1))){
		snprintf(why, sizeof(why), "error out of memory");
		bad = true;
	}else{
		if(ed->payloadlen) memcpy(text, ed->payload, ed->payloadlen);
		text[ed->payloadlen] = '\0';
	}
	for(line = text; line && !bad; line = next){
		const char *reason = NULL;
		next = strchr(line, '\n');
		if(next) *next++ = '\0';
		lineno++;
		if(lineno == 1){
			if(!parse_request(line, request)){
				strcpy(request, "-");
				snprintf(why, sizeof(why), "error the first line must be 'request <id>'");
				bad = true;
			}
			continue;
		}
		if(blank(line)) continue;
		if(count == cap){
			struct command *more_cmds;
			struct account **more_made;
			size_t grown = cap ? cap * 2 : 64;
			more_cmds = realloc(cmds, grown * sizeof(*cmds));
			if(more_cmds) cmds = more_cmds;
			more_made = realloc(made, grown * sizeof(*made));
			if(more_made) made = more_made;
			if(!more_cmds || !more_made){ bad = true; snprintf(why, sizeof(why), "error out of memory"); break; }
			cap = grown;
		}
		if(!parse_command(line, &cmds[count], &reason)){
			snprintf(why, sizeof(why), "error line %ld: %s", lineno, reason);
			bad = true;
			break;
		}
		if(cmds[count].kind == CMD_RELOAD){
			reload = true;
			continue;
		}
		/* Every account's memory before any change, so that a batch applies whole or not at all. */
		made[count] = NULL;
		if(cmds[count].kind == CMD_ADD && !(made[count] = malloc(sizeof(struct account)))){
			snprintf(why, sizeof(why), "error out of memory");
			bad = true;
			break;
		}
		count++;
	}
	if(!bad){
		for(size_t i = 0; i < count; i++) apply(&accounts, &cmds[i], made[i], true);
		applied = count;
		count = 0; /* the table owns (or apply freed) what was made */
		if(reload && load_all(true) != MOSQ_ERR_SUCCESS){
			snprintf(why, sizeof(why), "error reload failed: see the broker log");
			bad = true;
		}
	}
	if(!bad){
		snprintf(why, sizeof(why), "ok %u", HASH_COUNT(accounts));
		mosquitto_log_printf(MOSQ_LOG_INFO, "telemed_auth: %s applied %zu changes%s", client_id,
				applied, reload ? " and a reload" : "");
	}else{
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: %s: control message refused: %s", client_id, why);
	}
	for(size_t i = 0; i < count; i++) free(made[i]);
	respond(client_id, request, why);
	free(made);
	free(cmds);
	free(text);
	return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	load_all(true);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------ plugin entry points */

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data, struct mosquitto_opt *options, int option_count)
{
	(void)user_data;
	plugin_id = identifier;
	for(int i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "accounts")) snapshot_path = strdup(options[i].value);
		else if(!strcmp(options[i].key, "journal")) journal_path = strdup(options[i].value);
	}
	if(!snapshot_path){
		mosquitto_log_printf(MOSQ_LOG_ERR, "telemed_auth: plugin_opt_accounts is not set");
		return MOSQ_ERR_INVAL;
	}
	if(load_all(false) != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "telemed_auth: starting with no accounts; `telemed devices sync` writes them");
	}
	mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, acl_check, NULL, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_CONTROL, control, CONTROL_TOPIC, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
	mosquitto_callback_register(plugin_id, MOSQ_EVT_RELOAD, on_reload, NULL, NULL);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *options, int option_count)
{
	(void)user_data;
	(void)options;
	(void)option_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, acl_check, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_CONTROL, control, CONTROL_TOPIC);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_RELOAD, on_reload, NULL);
	free_table(&accounts);
	free(snapshot_path);
	free(journal_path);
	snapshot_path = journal_path = NULL;
	return MOSQ_ERR_SUCCESS;
}
