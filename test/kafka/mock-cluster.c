/*
 * A librdkafka mock cluster for the tests: real Kafka protocol on loopback, ephemeral ports.
 *
 *   mock-cluster [BROKERS]
 *
 * Prints "bootstraps HOST:PORT,..." on stdout once it listens, then reads one command per line
 * on stdin and answers "ok" or "error <why>" for each:
 *
 *   topic NAME PARTITIONS            create a topic (the mock has no CreateTopics API)
 *   errors APIKEY CODE [CODE...]     fail the next requests of that ApiKey with these codes
 *   down BROKER_ID | up BROKER_ID    take a broker down (disconnects clients) or back up
 *   rtt BROKER_ID MS                 delay that broker's responses
 *   leader TOPIC PARTITION BROKER_ID make that broker the partition's leader
 *   coordinator group GROUP BROKER_ID make that broker the group's coordinator
 *
 * It exits when stdin closes, so a test that dies never leaves a broker behind.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 64

/*
 * The leading fields of librdkafka's private `struct rd_kafka_mock_cluster_s`, the same from 1.x
 * to 2.x (src/rdkafka_mock_int.h). librdkafka 2.0 (Debian 12) never sets `controller_id`, so
 * Metadata names controller 0, a broker that does not exist; KafkaJS asks the controller for
 * producer ids (idempotent producer) and CreateTopics, and fails. We set it to broker 1, but only
 * after checking that the prefix really is what we expect (cluster id text, handle pointer).
 */
struct mock_cluster_prefix {
        char id[32];
        rd_kafka_t *rk;
        int32_t controller_id;
};

static void fix_controller(rd_kafka_mock_cluster_t *mc, rd_kafka_t *rk, int brokers) {
        struct mock_cluster_prefix *p = (struct mock_cluster_prefix *)mc;
        if (strncmp(p->id, "mockCluster", 11) != 0 || p->rk != rk) {
                fprintf(stderr, "mock-cluster: unexpected mock cluster layout; controller left as is\n");
                return;
        }
        if (p->controller_id < 1 || p->controller_id > brokers) p->controller_id = 1;
}

static void reply(const char *what) {
        fprintf(stdout, "%s\n", what);
        fflush(stdout);
}

int main(int argc, char **argv) {
        int brokers = argc > 1 ? atoi(argv[1]) : 3;
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        /* The handle only keeps the cluster's books; keep it from logging connection noise. */
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "mock-cluster: rd_kafka_new: %s\n", errstr);
                return 1;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
        if (!mc) {
                fprintf(stderr, "mock-cluster: cannot create a mock cluster\n");
                return 1;
        }
        fix_controller(mc, rk, brokers);
        fprintf(stdout, "bootstraps %s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);

        char line[4096];
        while (fgets(line, sizeof(line), stdin)) {
                char *save = NULL;
                char *cmd = strtok_r(line, " \t\r\n", &save);
                if (!cmd) continue;
                rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
                if (!strcmp(cmd, "topic")) {
                        char *name = strtok_r(NULL, " \t\r\n", &save);
                        char *parts = strtok_r(NULL, " \t\r\n", &save);
                        if (!name || !parts) { reply("error usage: topic NAME PARTITIONS"); continue; }
                        int rf = brokers < 3 ? brokers : 3;
                        err = rd_kafka_mock_topic_create(mc, name, atoi(parts), rf);
                } else if (!strcmp(cmd, "errors")) {
                        char *key = strtok_r(NULL, " \t\r\n", &save);
                        rd_kafka_resp_err_t codes[MAX_ERRORS];
                        size_t n = 0;
                        char *code;
                        while (n < MAX_ERRORS && (code = strtok_r(NULL, " \t\r\n", &save)))
                                codes[n++] = (rd_kafka_resp_err_t)atoi(code);
                        if (!key || n == 0) { reply("error usage: errors APIKEY CODE..."); continue; }
                        rd_kafka_mock_push_request_errors_array(mc, (int16_t)atoi(key), n, codes);
                } else if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
                        char *id = strtok_r(NULL, " \t\r\n", &save);
                        if (!id) { reply("error usage: down|up BROKER_ID"); continue; }
                        err = !strcmp(cmd, "down") ? rd_kafka_mock_broker_set_down(mc, atoi(id))
                                                   : rd_kafka_mock_broker_set_up(mc, atoi(id));
                } else if (!strcmp(cmd, "rtt")) {
                        char *id = strtok_r(NULL, " \t\r\n", &save);
                        char *ms = strtok_r(NULL, " \t\r\n", &save);
                        if (!id || !ms) { reply("error usage: rtt BROKER_ID MS"); continue; }
                        err = rd_kafka_mock_broker_set_rtt(mc, atoi(id), atoi(ms));
                } else if (!strcmp(cmd, "leader")) {
                        char *name = strtok_r(NULL, " \t\r\n", &save);
                        char *part = strtok_r(NULL, " \t\r\n", &save);
                        char *id = strtok_r(NULL, " \t\r\n", &save);
                        if (!name || !part || !id) { reply("error usage: leader TOPIC PARTITION BROKER_ID"); continue; }
                        err = rd_kafka_mock_partition_set_leader(mc, name, atoi(part), atoi(id));
                } else if (!strcmp(cmd, "coordinator")) {
                        char *type = strtok_r(NULL, " \t\r\n", &save);
                        char *key = strtok_r(NULL, " \t\r\n", &save);
                        char *id = strtok_r(NULL, " \t\r\n", &save);
                        if (!type || !key || !id) { reply("error usage: coordinator group|transaction KEY BROKER_ID"); continue; }
                        err = rd_kafka_mock_coordinator_set(mc, type, key, atoi(id));
                } else {
                        reply("error unknown command");
                        continue;
                }
                if (err) {
                        char msg[600];
                        snprintf(msg, sizeof(msg), "error %s", rd_kafka_err2str(err));
                        reply(msg);
                } else {
                        reply("ok");
                }
        }
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
