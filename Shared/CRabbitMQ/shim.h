#ifndef AIRA_CRABBITMQ_SHIM_H
#define AIRA_CRABBITMQ_SHIM_H
/* Debian 12 ships rabbitmq-c 0.11: flat headers. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_framing.h>
#include <sys/time.h>

/* amqp_login is variadic; Swift cannot call it. PLAIN SASL only. */
static inline amqp_rpc_reply_t aira_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                     int channel_max, int frame_max, int heartbeat,
                                                     const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/* Same, with client properties (connection name shown by the broker). */
static inline amqp_rpc_reply_t aira_amqp_login_plain_properties(amqp_connection_state_t state, const char *vhost,
                                                                int channel_max, int frame_max, int heartbeat,
                                                                const amqp_table_t *properties,
                                                                const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

/* The property flag macros, as functions Swift sees with their real type. */
static inline amqp_flags_t aira_amqp_flag_content_type(void) { return AMQP_BASIC_CONTENT_TYPE_FLAG; }
static inline amqp_flags_t aira_amqp_flag_headers(void) { return AMQP_BASIC_HEADERS_FLAG; }
static inline amqp_flags_t aira_amqp_flag_delivery_mode(void) { return AMQP_BASIC_DELIVERY_MODE_FLAG; }
static inline amqp_flags_t aira_amqp_flag_correlation_id(void) { return AMQP_BASIC_CORRELATION_ID_FLAG; }
static inline amqp_flags_t aira_amqp_flag_reply_to(void) { return AMQP_BASIC_REPLY_TO_FLAG; }
static inline amqp_flags_t aira_amqp_flag_expiration(void) { return AMQP_BASIC_EXPIRATION_FLAG; }
static inline amqp_flags_t aira_amqp_flag_message_id(void) { return AMQP_BASIC_MESSAGE_ID_FLAG; }
static inline amqp_flags_t aira_amqp_flag_timestamp(void) { return AMQP_BASIC_TIMESTAMP_FLAG; }
static inline amqp_flags_t aira_amqp_flag_type(void) { return AMQP_BASIC_TYPE_FLAG; }
static inline amqp_flags_t aira_amqp_flag_app_id(void) { return AMQP_BASIC_APP_ID_FLAG; }
static inline amqp_flags_t aira_amqp_flag_priority(void) { return AMQP_BASIC_PRIORITY_FLAG; }

#endif
