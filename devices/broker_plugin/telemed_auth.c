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
 *
 * The code is in four files; telemed_auth.h says which holds what.
 */

#include "telemed_auth.h"

static mosquitto_plugin_id_t *plugin_id;

/* ------------------------------------------------------------------ callbacks */

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
