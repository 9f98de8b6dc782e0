/* demo.h - the demo app: endpoints doing realistic per-request work, each
 * carrying the faults named after it (faults.h). */
#ifndef SRV_DEMO_H
#define SRV_DEMO_H

#include "http/http.h"

/* Register the faults and the demo's routes (sheddable); SRV_E2BIG or
 * SRV_EINVAL. */
int srv_demo_setup(void);
/* GET /hello?name=N: a greeting. Faults: hello.leak_response,
 * hello.off_by_one, hello.free_stack. */
void srv_demo_hello(srv_req_t *rq);
/* POST /echo: a JSON document made from the JSON body (GET: from a sample
 * document) by srv_echo_transform (echo.h). Faults: echo.leak_tree,
 * echo.leak_on_error, echo.free_interior. */
void srv_demo_echo(srv_req_t *rq);
/* POST /session (optional {"user": ...}) creates a session; GET
 * /session?id=I looks one up, GET /session counts them. Fault:
 * session.unbounded_cache. */
void srv_demo_session(srv_req_t *rq);
/* GET /blob?size=N: N bytes of text. Faults: blob.free_early,
 * blob.double_free. */
void srv_demo_blob(srv_req_t *rq);
/* GET /report?rows=N: a table of records with a hex dump of each. Faults:
 * report.uninit, report.grow_leak. */
void srv_demo_report(srv_req_t *rq);

#endif /* SRV_DEMO_H */
