import duckdb, json, sys
data = sys.argv[1]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
for t in ["calls", "tickets", "callbacks", "visits", "customers", "org_units", "staff"]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_csv('{data}/{t}.csv', header = true)")
# Local (Asia/Shanghai, UTC+8 all year) wall-clock time of an instant, and its month.
con.execute("CREATE MACRO L(c) AS CAST(CAST(c AS TIMESTAMPTZ) AS TIMESTAMP) + INTERVAL 8 HOUR")
con.execute("CREATE MACRO M(c) AS strftime(date_trunc('month', L(c)), '%Y-%m-%d')")
out = {}

def q(name, sql):
    out[name] = con.execute(sql).fetchall()

# Year to date as of 31 March 2026 against January-March 2025, with GROUPING SETS for the
# roll-up from branches to regions and ranks among peers.
q("ytd", """
WITH c AS (
    SELECT region, branch_id,
           count(*) FILTER (WHERE L(created_at) >= TIMESTAMP '2026-01-01'
                              AND L(created_at) < TIMESTAMP '2026-04-01') AS n,
           count(*) FILTER (WHERE L(created_at) >= TIMESTAMP '2025-01-01'
                              AND L(created_at) < TIMESTAMP '2025-04-01') AS n_ly
    FROM tickets WHERE kind = 'complaint' GROUP BY ALL
), e AS (
    SELECT region, branch_id,
           count(*) FILTER (WHERE CAST(L(opened_at) AS DATE) < DATE '2026-04-01'
               AND (closed_at IS NULL OR CAST(L(closed_at) AS DATE) >= DATE '2026-01-01')) AS x,
           count(*) FILTER (WHERE CAST(L(opened_at) AS DATE) < DATE '2025-04-01'
               AND (closed_at IS NULL OR CAST(L(closed_at) AS DATE) >= DATE '2025-01-01')) AS x_ly
    FROM customers GROUP BY ALL
), b AS (
    SELECT coalesce(c.region, e.region) AS region, coalesce(c.branch_id, e.branch_id) AS branch_id,
           coalesce(n, 0) AS n, coalesce(n_ly, 0) AS n_ly, coalesce(x, 0) AS x, coalesce(x_ly, 0) AS x_ly
    FROM c FULL JOIN e ON c.region = e.region AND c.branch_id = e.branch_id
), g AS (
    SELECT CASE WHEN grouping(branch_id) = 1 THEN 'region' ELSE 'branch' END AS level,
           CASE WHEN grouping(branch_id) = 1 THEN region ELSE branch_id END AS unit_id,
           region, sum(n) AS n, sum(n_ly) AS n_ly, sum(x) AS x
    FROM b GROUP BY GROUPING SETS ((region), (region, branch_id))
    HAVING sum(n) + sum(n_ly) + sum(x) + sum(x_ly) > 0
)
SELECT level, unit_id, region, n, n_ly,
       rank() OVER (PARTITION BY level, CASE WHEN level = 'branch' THEN region END ORDER BY n DESC),
       count(*) OVER (PARTITION BY level, CASE WHEN level = 'branch' THEN region END),
       x, n * 10000.0 / nullif(x, 0)
FROM g ORDER BY level DESC, region, unit_id
""")

# Follow-up of the callbacks that need one: the first later manual callback on the same
# subject, found by a correlated subquery.
q("follow_up", """
WITH cb AS (
    SELECT *, CASE WHEN ticket_id IS NOT NULL THEN 't' || ticket_id
                   WHEN call_id IS NOT NULL THEN 'c' || call_id
                   WHEN customer_id IS NOT NULL THEN 'u' || customer_id END AS subject
    FROM callbacks
), n AS (
    SELECT M(performed_at) AS period, region,
           CASE WHEN score = 'dissatisfied' THEN 'dissatisfied' ELSE 'no_answer' END AS need,
           (SELECT min(m.performed_at) FROM cb m WHERE m.subject = cb.subject AND m.method = 'manual'
              AND m.performed_at > cb.performed_at) - performed_at AS delay
    FROM cb
    WHERE L(performed_at) >= TIMESTAMP '2026-01-01' AND L(performed_at) < TIMESTAMP '2026-04-01'
      AND (score = 'dissatisfied' OR (method IN ('auto_voice', 'sms') AND status = 'no_answer'))
)
SELECT period, region, need, count(*), count(delay),
       count(*) FILTER (WHERE delay <= INTERVAL 3 DAY), count(*) - count(delay)
FROM n GROUP BY ALL ORDER BY ALL
""")

# Closures by churn type per month with the customers at the month's start.
q("churn_type", """
WITH m AS (SELECT unnest([DATE '2026-01-01', DATE '2026-02-01', DATE '2026-03-01']) AS s),
c AS (SELECT region, CAST(L(opened_at) AS DATE) AS o, CAST(L(closed_at) AS DATE) AS cl,
             coalesce(close_reason, 'unknown') AS r FROM customers)
SELECT strftime(m.s, '%Y-%m-%d'), c.region, c.r, count(*),
       (SELECT count(*) FROM c c2 WHERE c2.region = c.region AND c2.o < m.s
          AND (c2.cl IS NULL OR c2.cl >= m.s))
FROM m JOIN c ON c.cl >= m.s AND c.cl < m.s + INTERVAL 1 MONTH
GROUP BY ALL ORDER BY ALL
""")

# Contacts by channel: inbound calls, hall visits, tickets through other channels.
q("channels", """
SELECT period, region, channel, sum(n) FROM (
    SELECT M(ivr_entered_at) AS period, region, channel, count(*) AS n FROM calls
    WHERE direction = 'inbound' GROUP BY ALL
    UNION ALL
    SELECT M(arrived_at), region, 'hall', count(*) FROM visits GROUP BY ALL
    UNION ALL
    SELECT M(created_at), region, channel, count(*) FROM tickets
    WHERE channel NOT IN ('hotline', 'counter') GROUP BY ALL
) WHERE period >= '2026-01-01' AND period < '2026-04-01'
GROUP BY ALL ORDER BY ALL
""")

# Hall queues by self-joins: who waits at each instant, rather than a running sum.
q("queues", """
WITH v AS (
    SELECT visit_id, branch_id, region, CAST(arrived_at AS TIMESTAMPTZ) AS a,
           CAST(called_at AS TIMESTAMPTZ) AS c
    FROM visits
    WHERE L(arrived_at) >= TIMESTAMP '2026-01-01' AND L(arrived_at) < TIMESTAMP '2026-04-01'
), instants AS (
    SELECT DISTINCT branch_id, region, a AS t FROM v
    UNION SELECT DISTINCT branch_id, region, c FROM v WHERE c IS NOT NULL
), level AS (
    SELECT i.branch_id, i.region, i.t,
           (SELECT count(*) FROM v w WHERE w.branch_id = i.branch_id AND w.c IS NOT NULL
              AND w.a <= i.t AND w.c > i.t) AS q
    FROM instants i
), spans AS (
    SELECT *, lead(t) OVER (PARTITION BY branch_id ORDER BY t) AS t_next FROM level
), arrivals AS (
    SELECT v.branch_id, v.region, v.a,
           (SELECT count(*) FROM v w WHERE w.branch_id = v.branch_id AND w.c IS NOT NULL
              AND w.a < v.a AND w.c > v.a)
           + CASE WHEN v.c IS NULL THEN 0 ELSE row_number() OVER (
                 PARTITION BY v.branch_id, v.a, v.c IS NULL ORDER BY v.visit_id) - 1 END AS ahead
    FROM v
), per_span AS (
    SELECT M(t) AS period, region, branch_id, max(q) AS peak,
           sum(epoch(t_next) - epoch(t)) FILTER (WHERE q > 5) / 60.0 AS minutes
    FROM spans WHERE t < TIMESTAMPTZ '2026-03-31 16:00:00+00' GROUP BY ALL
), per_arrival AS (
    SELECT M(a) AS period, region, branch_id, count(*) AS arrivals,
           count(*) FILTER (WHERE ahead > 5) AS over
    FROM arrivals GROUP BY ALL
)
SELECT s.period, s.region, s.branch_id, coalesce(a.arrivals, 0), s.peak, coalesce(s.minutes, 0),
       coalesce(a.over, 0)
FROM per_span s LEFT JOIN per_arrival a USING (period, region, branch_id)
ORDER BY ALL
""")

q("counter", """
SELECT M(arrived_at), region, branch_id, count(*), count(score), avg(score),
       count(*) FILTER (WHERE score >= 4) / nullif(count(score), 0)
FROM visits
WHERE outcome = 'served'
  AND L(arrived_at) >= TIMESTAMP '2026-01-01' AND L(arrived_at) < TIMESTAMP '2026-04-01'
GROUP BY ALL ORDER BY ALL
""")

# Staff: contacts, justified complaints about them, callbacks on their work (each ticket
# or call once per month, its last score), ranked in region x role.
q("agents", """
WITH contacts AS (
    SELECT M(answered_at) AS period, region, agent_id AS staff_id, CAST(L(answered_at) AS DATE) AS d
    FROM calls WHERE direction = 'inbound' AND agent_id IS NOT NULL AND answered_at IS NOT NULL
    UNION ALL
    SELECT M(arrived_at), region, staff_id, CAST(L(arrived_at) AS DATE)
    FROM visits WHERE outcome = 'served' AND staff_id IS NOT NULL
), w AS (
    SELECT period, region, staff_id, count(*) AS n, count(DISTINCT d) AS days FROM contacts GROUP BY ALL
), c AS (
    SELECT M(created_at) AS period, region, subject_staff_id AS staff_id, count(*) AS k
    FROM tickets WHERE kind = 'complaint' AND justified AND subject_staff_id IS NOT NULL GROUP BY ALL
), j AS (
    SELECT M(b.performed_at) AS period, b.region, coalesce(t.owner_id, k.agent_id) AS staff_id,
           arg_max(b.score, b.performed_at) AS s
    FROM callbacks b
    LEFT JOIN tickets t ON t.ticket_id = b.ticket_id
    LEFT JOIN calls k ON k.call_id = b.call_id AND b.ticket_id IS NULL
    WHERE b.score IS NOT NULL AND (b.ticket_id IS NOT NULL OR b.call_id IS NOT NULL)
    GROUP BY M(b.performed_at), b.region, coalesce(t.owner_id, k.agent_id), b.ticket_id, b.call_id
), f AS (
    SELECT period, region, staff_id, count(*) AS scored,
           avg(CASE WHEN s IN ('very_satisfied', 'satisfied') THEN 1.0 ELSE 0.0 END) AS sat
    FROM j WHERE staff_id IS NOT NULL GROUP BY ALL
), p AS (
    SELECT period, region, staff_id FROM w UNION SELECT period, region, staff_id FROM c
    UNION SELECT period, region, staff_id FROM f
), m AS (
    SELECT p.*, coalesce(s.role, 'unknown') AS role, coalesce(w.n, 0) AS n, coalesce(w.days, 0) AS days,
           w.n / w.days AS per_day, coalesce(c.k, 0) AS k, coalesce(f.scored, 0) AS scored, f.sat
    FROM p LEFT JOIN w USING (period, region, staff_id) LEFT JOIN c USING (period, region, staff_id)
    LEFT JOIN f USING (period, region, staff_id) LEFT JOIN staff s ON s.staff_id = p.staff_id
    WHERE p.period >= '2026-01-01' AND p.period < '2026-04-01'
)
SELECT period, region, staff_id, role, n, days, k, scored, sat,
       CASE WHEN per_day IS NOT NULL THEN rank() OVER (PARTITION BY period, region, role, per_day IS NULL ORDER BY per_day DESC) END,
       rank() OVER (PARTITION BY period, region, role ORDER BY k),
       count(*) OVER (PARTITION BY period, region, role)
FROM m ORDER BY period, region, role, staff_id
""")

# The regulator's set per month: exposure, transferred complaints on time, withdrawals,
# mediation.
q("regulator", """
WITH newest AS (SELECT greatest(max(created_at), max(resolved_at), max(closed_at)) AS t FROM tickets),
m AS (SELECT unnest([DATE '2026-01-01', DATE '2026-02-01', DATE '2026-03-01']) AS s),
t AS (
    SELECT M(created_at) AS period, region, source, status, mediation_result,
           source = 'regulator_transferred' AND status NOT IN ('withdrawn', 'rejected') AS judged,
           resolved_at <= due_at AS on_time,
           resolved_at > due_at OR (resolved_at IS NULL AND due_at < (SELECT t FROM newest)) AS late
    FROM tickets WHERE kind = 'complaint'
), k AS (
    SELECT period, region, count(*) AS n,
           count(*) FILTER (WHERE source = 'regulator_transferred') AS reg,
           count(*) FILTER (WHERE judged AND on_time) AS on_time,
           count(*) FILTER (WHERE judged AND late) AS late,
           count(*) FILTER (WHERE status = 'withdrawn' AND source <> 'regulator_transferred') AS wd,
           count(mediation_result) AS med,
           count(*) FILTER (WHERE mediation_result = 'succeeded') AS med_ok
    FROM t GROUP BY ALL
), e AS (
    SELECT strftime(m.s, '%Y-%m-%d') AS period, region, count(*) AS x
    FROM m JOIN customers c ON CAST(L(c.opened_at) AS DATE) < m.s + INTERVAL 1 MONTH
       AND (c.closed_at IS NULL OR CAST(L(c.closed_at) AS DATE) >= m.s)
    GROUP BY ALL
)
SELECT e.period, e.region, coalesce(n, 0), x, coalesce(reg, 0), coalesce(on_time, 0),
       coalesce(late, 0), coalesce(wd, 0), coalesce(med, 0), med_ok / nullif(med, 0)
FROM e LEFT JOIN k USING (period, region)
ORDER BY ALL
""")
# Work orders as items and households in the first quarter of 2026, rolled up along the
# organisation by a UNION of separate aggregates (no grouping sets), cities from the
# branches' parents.
q("households", """
WITH t AS (
    SELECT t.region, t.branch_id, p.unit_id AS city, t.customer_id,
           coalesce(t.status = 'closed' AND L(t.closed_at) < TIMESTAMP '2026-04-01', false) AS closed
    FROM tickets t
    LEFT JOIN org_units b ON b.unit_id = t.branch_id
    LEFT JOIN org_units p ON p.unit_id = b.parent_id AND p.level = 'city'
    WHERE t.kind = 'work_order'
      AND L(t.created_at) >= TIMESTAMP '2026-01-01' AND L(t.created_at) < TIMESTAMP '2026-04-01'
), u AS (
    SELECT 0 AS o, 'all' AS level, 'all' AS unit_id, NULL AS region, count(*) AS items,
           count(DISTINCT customer_id) AS households, sum(closed::INT) AS closed FROM t
    UNION ALL
    SELECT 1, 'region', region, region, count(*), count(DISTINCT customer_id), sum(closed::INT)
    FROM t GROUP BY region
    UNION ALL
    SELECT 2, 'city', city, region, count(*), count(DISTINCT customer_id), sum(closed::INT)
    FROM t WHERE city IS NOT NULL GROUP BY region, city
    UNION ALL
    SELECT 3, 'branch', branch_id, region, count(*), count(DISTINCT customer_id), sum(closed::INT)
    FROM t WHERE branch_id IS NOT NULL GROUP BY region, branch_id
)
SELECT level, unit_id, region, items, households, closed FROM u ORDER BY o, region, unit_id
""")
print(json.dumps(out, default=str))
