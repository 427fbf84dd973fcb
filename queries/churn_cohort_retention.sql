-- purpose: Cohort retention: of the customers first seen in a month, the share still
--   active N months later.
-- formula: cohort = local month of a customer's first contact (call, ticket, visit or
--   callback) on or after {from}; size = customers in it; retention at k = cohort
--   customers with a contact in month cohort + k / size (k = 0 is 1 by definition).
--   Months are the tables' `month` partitions (the local month of each event).
-- grain: one row per cohort month x months since (0 to {months})
-- param: from date 2026-01-01 first cohort month (local), inclusive
-- param: to date 2026-07-01 cohorts are the months before this day's month
-- param: months int 6 months to follow each cohort
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    SELECT customer_id, region, month FROM calls
        WHERE customer_id IS NOT NULL AND ivr_entered_at >= {{from:utc}} AND month >= {{from:month}}
    UNION ALL
    SELECT customer_id, region, month FROM tickets
        WHERE customer_id IS NOT NULL AND created_at >= {{from:utc}} AND month >= {{from:month}}
    UNION ALL
    SELECT customer_id, region, month FROM visits
        WHERE customer_id IS NOT NULL AND arrived_at >= {{from:utc}} AND month >= {{from:month}}
    UNION ALL
    SELECT customer_id, region, month FROM callbacks
        WHERE performed_at >= {{from:utc}} AND month >= {{from:month}}
),
active AS (
    -- Month numbers (year x 12 + month) of each customer's active months.
    SELECT DISTINCT customer_id, month,
           CAST(substr(month, 1, 4) AS INT) * 12 + CAST(substr(month, 6, 2) AS INT) AS month_number
    FROM contacts
    WHERE region LIKE {{region}}
),
cohorts AS (
    SELECT customer_id, min(month_number) AS cohort, min(month) AS cohort_month
    FROM active GROUP BY customer_id
),
limit_month AS (
    SELECT CAST(substr({{to:month}}, 1, 4) AS INT) * 12 + CAST(substr({{to:month}}, 6, 2) AS INT) AS n
),
sizes AS (
    SELECT cohort, cohort_month, count(*) AS size FROM cohorts, limit_month
    WHERE cohort < limit_month.n GROUP BY cohort, cohort_month
),
cells AS (
    SELECT c.cohort, a.month_number - c.cohort AS months_since, count(*) AS retained
    FROM cohorts c
    JOIN active a ON a.customer_id = c.customer_id
    GROUP BY 1, 2
)
SELECT
    CAST(s.cohort_month || '-01' AS DATE) AS cohort,
    CAST(k.months_since AS INT) AS months_since,
    s.size,
    coalesce(cl.retained, 0) AS retained,
    CAST(coalesce(cl.retained, 0) AS DOUBLE) / s.size AS retention
FROM sizes s
CROSS JOIN (SELECT value AS months_since FROM generate_series(0, {{months}})) k
LEFT JOIN cells cl ON cl.cohort = s.cohort AND cl.months_since = k.months_since
ORDER BY 1, months_since
