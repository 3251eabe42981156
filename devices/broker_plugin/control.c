/*
 * telemed_auth: the control messages on $CONTROL/telemed-auth/v1, checked whole and applied
 * whole or not at all, and their answers. See telemed_auth.c.
 */

#include "telemed_auth.h"

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

int control(int event, void *event_data, void *userdata)
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
