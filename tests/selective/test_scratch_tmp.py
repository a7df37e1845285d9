import time, psycopg
from campus_sync import engine, db, config, selective

def test_scratch(deployment, graph):
    cfg = deployment["config"]
    t=time.time()
    for d in cfg.districts:
        engine.sync_objects(graph, graph.enabled(cfg.state), district_id=d.id, source_dsn=deployment["districts"][d.id],
                            state_dsn=deployment["state"], scope=engine.Scope(cfg.end_year()))
    print("full sync", time.time()-t)
    with psycopg.connect(deployment["state"]) as c:
        p = c.execute("select personid from state.personidentity where district_id='0101' order by personid limit 1").fetchone()[0]
    t=time.time()
    s = selective.run({"object":"PersonIdentity","ids":f"{p}, 99999 {p}","district":"0101"}, user="me")
    print("selective", time.time()-t, s)
    t=time.time()
    s = selective.run({"object":"Enrollment","ids":"1000001, 1000100, 1000200, 1000245, 1000281, 1000283","district":"0101"}, user="me")
    print("selective", time.time()-t, s)
