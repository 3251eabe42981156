/*
 * telemed_auth's internal header: what its files share (telemed_auth.c describes the plugin).
 *
 *   telemed_auth.c  the plugin's entry points and the registration of its callbacks
 *   accounts.c      the account table: command lines, the snapshot and the journal
 *   access.c        logins and client ids, the publish/subscribe ACL, retained readings
 *   control.c       the $CONTROL/telemed-auth/v1 handler
 *
 * Everything declared here is hidden: the plugin exports only Mosquitto's three entry points,
 * and none of its names can bind to a symbol of the broker or of another plugin.
 */

#ifndef TELEMED_AUTH_H
#define TELEMED_AUTH_H

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

#pragma GCC visibility push(hidden)

extern struct account *accounts;
extern char *snapshot_path;
extern char *journal_path;

#ifdef TELEMED_AUTH_HARNESS
/* The harness's way in between the two reads of load_all, to rewrite the files there. */
extern void (*between_reads)(void);
#endif

/* accounts.c */
const char *role_name(enum role r);
bool valid_username(const char *s);
bool parse_command(char *line, struct command *cmd, const char **why);
void apply(struct account **table, const struct command *cmd, struct account *made, bool live);
void free_table(struct account **table);
int load_all(bool live);

/* access.c */
int basic_auth(int event, void *event_data, void *userdata);
int acl_check(int event, void *event_data, void *userdata);
int on_message(int event, void *event_data, void *userdata);

/* control.c */
int control(int event, void *event_data, void *userdata);

#pragma GCC visibility pop

#endif
