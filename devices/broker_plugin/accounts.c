/*
 * telemed_auth: the account table, and the two files it is read from (the snapshot and the
 * journal of changes since), both read at start and on `reload`; the command lines they and
 * the control messages hold. See telemed_auth.c.
 */

#include "telemed_auth.h"

struct account *accounts;
char *snapshot_path;
char *journal_path;

/* ------------------------------------------------------------------ parsing */

const char *role_name(enum role r)
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
bool valid_username(const char *s)
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
bool parse_command(char *line, struct command *cmd, const char **why)
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

void apply(struct account **table, const struct command *cmd, struct account *made, bool live)
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

void free_table(struct account **table)
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
void (*between_reads)(void);
#endif

/* Snapshot, then the journal of the same generation. Kicks what the new table drops or
 * changes when `live`. The table is replaced only when the snapshot could be read.
 *
 * The application writes a new snapshot, then a new journal, each by a rename. A journal of
 * another generation is older than the snapshot (its changes are in the snapshot: ignored) or
 * newer (both files were replaced between our two reads: read both again). */
int load_all(bool live)
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
