/*
 * telemed_auth: who may log in under which client id, what each account may publish and
 * subscribe to, and readings never kept as retained messages. See telemed_auth.c.
 */

#include "telemed_auth.h"

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

int basic_auth(int event, void *event_data, void *userdata)
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

int acl_check(int event, void *event_data, void *userdata)
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
int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	(void)event;
	(void)userdata;
	if(ed->retain && ed->payloadlen > 0 && readings_topic(ed->topic)) ed->retain = false;
	return MOSQ_ERR_SUCCESS;
}
