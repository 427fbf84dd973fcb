-- purpose: Cohort retention: of the customers first seen in a month, the share still
--   active N months later.
-- formula: cohort = local month of a customer's first contact (call, ticket, visit or
--   callback) on or after {from}; size = customers in it; retention at k = cohort
--   customers with a contact in month cohort + k / size (k = 0 is 1 by definition).
-- grain: one row per cohort month x months since (0 to {months})
-- param: from date 2026-01-01 first cohort month (local), inclusive
-- param: to date 2026-07-01 end of the cohorts, exclusive
-- param: months int 6 months to follow each cohort
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    SELECT customer_id, region, ivr_entered_at AS event_at FROM calls
        WHERE customer_id IS NOT NULL AND ivr_entered_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, region, created_at FROM tickets
        WHERE customer_id IS NOT NULL AND created_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, region, arrived_at FROM visits
        WHERE customer_id IS NOT NULL AND arrived_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, region, performed_at FROM callbacks WHERE performed_at >= {{from:utc}}
),
active AS (
    SELECT DISTINCT customer_id,
           CAST(date_trunc('month', CAST(local_date(event_at) AS TIMESTAMP)) AS DATE) AS month
    FROM contacts
    WHERE region LIKE {{region}}
),
cohorts AS (
    SELECT customer_id, min(month) AS cohort FROM active GROUP BY customer_id
),
sizes AS (
    SELECT cohort, count(*) AS size FROM cohorts
    WHERE cohort < {{to}} GROUP BY cohort
),
cells AS (
    SELECT c.cohort,
           (date_part('year', a.month) - date_part('year', c.cohort)) * 12
               + date_part('month', a.month) - date_part('month', c.cohort) AS months_since,
           count(*) AS retained
    FROM cohorts c
    JOIN active a ON a.customer_id = c.customer_id
    WHERE c.cohort < {{to}}
    GROUP BY 1, 2
)
SELECT s.cohort, CAST(k.months_since AS INT) AS months_since, s.size,
       coalesce(cl.retained, 0) AS retained,
       CAST(coalesce(cl.retained, 0) AS DOUBLE) / s.size AS retention
FROM sizes s
CROSS JOIN (SELECT CAST(value AS DOUBLE) AS months_since FROM generate_series(0, {{months}})) k
LEFT JOIN cells cl ON cl.cohort = s.cohort AND cl.months_since = k.months_since
ORDER BY s.cohort, months_since
