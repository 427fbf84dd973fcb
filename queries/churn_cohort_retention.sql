-- purpose: Cohort retention: of the customers first seen in a month, the share still
--   active N months later.
-- formula: activity = contacts the customer made or took part in: inbound calls,
--   tickets, branch visits, and callbacks that reached them (outbound campaign calls
--   and unanswered callbacks are the company's, not the customer's). cohort = local
--   month of a customer's first activity in the warehouse's whole history; customers
--   active before {from} belong to earlier cohorts and are left out; size = customers
--   in it; retention at k = cohort customers active in month cohort + k / size (k = 0
--   is 1 by definition). Months after the newest activity the warehouse holds are not
--   observed: their retained and retention are NULL, not 0; the month holding the
--   newest activity may be incomplete and is provisional. Each customer's active
--   months are one 64-bit set, so the months from {from} to the last one followed
--   ({to}'s month - 1 + {months}) may span at most 64; longer spans are refused with an
--   error.
-- grain: one row per cohort month x months since (0 to {months})
-- lookahead: all
-- param: from date 2026-01-01 first cohort month (local), inclusive
-- param: to date 2026-07-01 cohorts are the months before this day's month
-- param: months int 6 months to follow each cohort
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    -- The whole history before the end of the follow-up: whether a customer was active
    -- before {from} decides their cohort.
    SELECT customer_id, region, ivr_entered_at AS event_at FROM calls
        WHERE customer_id IS NOT NULL AND direction = 'inbound'
          AND ivr_entered_at < local_midnight({{to}} + {{months:months}})
    UNION ALL
    SELECT customer_id, region, created_at FROM tickets
        WHERE customer_id IS NOT NULL
          AND created_at < local_midnight({{to}} + {{months:months}})
    UNION ALL
    SELECT customer_id, region, arrived_at FROM visits
        WHERE customer_id IS NOT NULL
          AND arrived_at < local_midnight({{to}} + {{months:months}})
    UNION ALL
    SELECT customer_id, region, performed_at FROM callbacks
        WHERE status = 'reached'
          AND performed_at < local_midnight({{to}} + {{months:months}})
),
numbered AS (
    -- Months since {from}'s month (negative before it).
    SELECT customer_id, date_diff('month', {{from}}, local_date(event_at)) AS m
    FROM contacts
    WHERE region LIKE {{region}}
),
observed AS (
    SELECT max(m) AS last_month FROM numbered
),
customer_months AS (
    SELECT min(m) AS cohort,
           bit_or(CASE WHEN m >= 0 THEN CAST(1 AS BIGINT) << m ELSE 0 END) AS active_months
    FROM numbered
    WHERE m < date_diff('month', {{from}}, {{to}}) + {{months}}
    GROUP BY customer_id
    HAVING min(m) >= 0
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
),
cells AS (
    SELECT
        c.cohort_start,
        CASE WHEN date_diff('month', {{from}}, {{to}}) + {{months}} > 64
             THEN error('churn_cohort_retention: from {from} to {to} plus {months} months of follow-up spans more than 64 months')
             ELSE CAST(k.value AS INT) END AS months_since,
        s.cohort + k.value AS month_index,
        sum(s.customers) AS size,
        sum(s.customers * ((s.active_months >> CAST(s.cohort + k.value AS INT)) & 1)) AS retained
    FROM shapes s
    JOIN cohorts c ON c.cohort = s.cohort
    CROSS JOIN (SELECT value FROM (SELECT unnest(generate_series(0, {{months}})) AS value)) k
    GROUP BY c.cohort_start, k.value, s.cohort
)
SELECT
    x.cohort_start AS cohort,
    x.months_since,
    x.size,
    CASE WHEN x.month_index <= o.last_month THEN x.retained END AS retained,
    CASE WHEN x.month_index <= o.last_month THEN CAST(x.retained AS DOUBLE) / x.size END AS retention,
    x.month_index >= o.last_month AS provisional
FROM cells x CROSS JOIN observed o
ORDER BY 1, 2
