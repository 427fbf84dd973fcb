-- purpose: Cohort retention: of the customers first seen in a month, the share still
--   active N months later.
-- formula: cohort = local month of a customer's first contact (call, ticket, visit or
--   callback) on or after {from}; size = customers in it; retention at k = cohort
--   customers with a contact in month cohort + k / size (k = 0 is 1 by definition).
--   Each customer's active months are one 64-bit set, so the months from {from} to the
--   last one followed ({to}'s month - 1 + {months}) may span at most 64; longer spans
--   are refused with an error.
-- grain: one row per cohort month x months since (0 to {months})
-- param: from date 2026-01-01 first cohort month (local), inclusive
-- param: to date 2026-07-01 cohorts are the months before this day's month
-- param: months int 6 months to follow each cohort
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    SELECT customer_id, region, ivr_entered_at AS event_at FROM calls
        WHERE customer_id IS NOT NULL AND month >= {{from:month}}
          AND ivr_entered_at >= {{from:utc}} AND ivr_entered_at < {{to:utc}} + {{months:months}}
    UNION ALL
    SELECT customer_id, region, created_at FROM tickets
        WHERE customer_id IS NOT NULL AND month >= {{from:month}}
          AND created_at >= {{from:utc}} AND created_at < {{to:utc}} + {{months:months}}
    UNION ALL
    SELECT customer_id, region, arrived_at FROM visits
        WHERE customer_id IS NOT NULL AND month >= {{from:month}}
          AND arrived_at >= {{from:utc}} AND arrived_at < {{to:utc}} + {{months:months}}
    UNION ALL
    SELECT customer_id, region, performed_at FROM callbacks
        WHERE month >= {{from:month}}
          AND performed_at >= {{from:utc}} AND performed_at < {{to:utc}} + {{months:months}}
),
numbered AS (
    -- Months since {from}'s month, up to the last month a cohort is followed in.
    SELECT customer_id, date_diff('month', {{from}}, local_date(event_at)) AS m
    FROM contacts
    WHERE region LIKE {{region}}
),
customer_months AS (
    SELECT min(m) AS cohort, bit_or(CAST(1 AS BIGINT) << m) AS active_months
    FROM numbered
    WHERE m < date_diff('month', {{from}}, {{to}}) + {{months}}
    GROUP BY customer_id
),
shapes AS (
    -- Customers with the same cohort and the same active months: a few thousand rows.
    SELECT cohort, active_months, count(*) AS customers
    FROM customer_months
    GROUP BY cohort, active_months
),
cohorts AS (
    SELECT CAST(value AS DATE) AS cohort_start,
           date_diff('month', {{from}}, CAST(value AS DATE)) AS cohort
    FROM (SELECT unnest(generate_series(date_trunc('month', CAST({{from}} AS TIMESTAMP)),
                         date_trunc('month', CAST({{to}} AS TIMESTAMP)) - INTERVAL '1 day',
                         INTERVAL '1 month')) AS value)
)
SELECT
    c.cohort_start AS cohort,
    CASE WHEN date_diff('month', {{from}}, {{to}}) + {{months}} > 64
         THEN error('churn_cohort_retention: from {from} to {to} plus {months} months of follow-up spans more than 64 months')
         ELSE CAST(k.value AS INT) END AS months_since,
    sum(s.customers) AS size,
    sum(s.customers * ((s.active_months >> CAST(s.cohort + k.value AS INT)) & 1)) AS retained,
    CAST(sum(s.customers * ((s.active_months >> CAST(s.cohort + k.value AS INT)) & 1)) AS DOUBLE)
        / sum(s.customers) AS retention
FROM shapes s
JOIN cohorts c ON c.cohort = s.cohort
CROSS JOIN (SELECT value FROM (SELECT unnest(generate_series(0, {{months}})) AS value)) k
GROUP BY c.cohort_start, k.value
ORDER BY 1, 2
