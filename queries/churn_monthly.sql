-- purpose: Monthly churn by region, segment and tier: explicit closures (销户 / ported
--   away) and activity-based churn, with new customers and the net change.
-- formula: at start = customers opened before the month and not closed before it
--   (local days); closed = closed_at in the month; explicit churn rate = closed / at
--   start; new = opened in the month; net change = new - closed.
--   Activity churn: activity = contacts the customer made or took part in (inbound
--   calls, tickets, branch visits, callbacks that reached them; outbound campaign calls
--   and unanswered callbacks are the company's, not the customer's); active =
--   customers with activity in the month; such a customer is retained when their next contact comes within
--   {days} days of their last contact in the month, churned when it does not, and
--   unknown when those {days} days run past the last event of any kind the warehouse
--   holds (the outcome is not observed yet); activity churn rate = churned / (active -
--   unknown).
--   Segment and tier are the customer's current ones.
-- grain: one row per month x region x segment x tier
-- lookahead: {days} days
-- period column: month
-- param: from date 2026-01-01 first local day, inclusive (months start here)
-- param: to date 2026-04-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: days int 90 days without contact that make an active customer churned
WITH months AS (
    SELECT CAST(value AS DATE) AS month_start
    FROM (SELECT unnest(generate_series(date_trunc('month', CAST({{from}} AS TIMESTAMP)),
                         CAST({{to}} AS TIMESTAMP) - INTERVAL '1 day', INTERVAL '1 month')) AS value)
),
cust AS (
    SELECT customer_id, region, segment, tier,
           local_date(opened_at) AS opened, local_date(closed_at) AS closed
    FROM customers
    WHERE region LIKE {{region}}
),
cust_groups AS (
    -- Customers counted by what decides each month's explicit figures (their group and
    -- the months they opened and closed in), so that the months multiply tens of
    -- thousands of groups rather than every customer.
    SELECT region, segment, tier,
           CAST(date_trunc('month', opened) AS DATE) AS opened_month,
           CAST(date_trunc('month', closed) AS DATE) AS closed_month,
           count(*) AS customers
    FROM cust
    GROUP BY 1, 2, 3, 4, 5
),
explicit AS (
    -- A month starts on its first day, so "opened before it" is "opened in an earlier
    -- month", and "closed in it" is "closed in that month".
    SELECT m.month_start, c.region, c.segment, c.tier,
           coalesce(sum(c.customers) FILTER (WHERE c.opened_month < m.month_start
               AND (c.closed_month IS NULL OR c.closed_month >= m.month_start)), 0) AS at_start,
           coalesce(sum(c.customers) FILTER (WHERE c.closed_month = m.month_start), 0) AS closed,
           coalesce(sum(c.customers) FILTER (WHERE c.opened_month = m.month_start), 0) AS new_customers
    FROM months m CROSS JOIN cust_groups c
    GROUP BY m.month_start, c.region, c.segment, c.tier
),
contacts AS (
    SELECT customer_id, ivr_entered_at AS event_at FROM calls
        WHERE customer_id IS NOT NULL AND direction = 'inbound' AND ivr_entered_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, created_at FROM tickets
        WHERE customer_id IS NOT NULL AND created_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, arrived_at FROM visits
        WHERE customer_id IS NOT NULL AND arrived_at >= {{from:utc}}
    UNION ALL
    SELECT customer_id, performed_at FROM callbacks
        WHERE status = 'reached' AND performed_at >= {{from:utc}}
),
observed AS (
    -- What the warehouse holds so far: its newest event of any kind (an outbound call or
    -- an unanswered callback is data delivered too), so that whether a month's outcomes
    -- are known depends only on whether any event lies past their {days} days.
    SELECT max(event_at) AS last_event FROM (
        SELECT max(ivr_entered_at) AS event_at FROM calls WHERE ivr_entered_at >= {{from:utc}}
        UNION ALL SELECT max(created_at) FROM tickets WHERE created_at >= {{from:utc}}
        UNION ALL SELECT max(arrived_at) FROM visits WHERE arrived_at >= {{from:utc}}
        UNION ALL SELECT max(performed_at) FROM callbacks WHERE performed_at >= {{from:utc}}
    )
),
per_customer AS (
    -- Each customer's months with a contact, with the month's last contact and the one
    -- after it (the first of the customer's next month with a contact): grouped by
    -- customer alone, not by customer and month with a lead() over the months.
    SELECT customer_id,
           period_last_next(local_trunc('month', event_at), event_at) AS months
    FROM contacts
    GROUP BY customer_id
),
last_in_month AS (
    -- Joined to the customers before the months are unnested: a million customers
    -- rather than ten million customer-months to look up.
    SELECT region, segment, tier, m['period'] AS month_start, m['last_at'] AS last_at,
           m['next_at'] AS next_at
    FROM (SELECT c.region, c.segment, c.tier, unnest(p.months) AS m
          FROM cust c JOIN per_customer p ON p.customer_id = c.customer_id)
),
activity AS (
    SELECT l.month_start, l.region, l.segment, l.tier,
           count(*) AS active,
           count(*) FILTER (WHERE l.next_at IS NULL AND date_diff('microsecond', l.last_at, o.last_event) < {{days}} * 86400000000) AS unknown,
           count(*) FILTER (WHERE (l.next_at IS NULL AND date_diff('microsecond', l.last_at, o.last_event) >= {{days}} * 86400000000)
               OR date_diff('microsecond', l.last_at, l.next_at) > {{days}} * 86400000000) AS churned
    -- The one-row side first: it is the side a cross join holds in memory, and the
    -- optimizer has no row count for unnested lists to swap the sides by.
    FROM observed o
    CROSS JOIN last_in_month l
    WHERE l.month_start < {{to}}
    GROUP BY l.month_start, l.region, l.segment, l.tier
),
result AS (
    SELECT
        e.month_start AS month,
        e.region,
        e.segment,
        e.tier,
        e.at_start,
        e.closed,
        CAST(e.closed AS DOUBLE) / nullif(e.at_start, 0) AS explicit_churn_rate,
        e.new_customers,
        e.new_customers - e.closed AS net_change,
        coalesce(a.active, 0) AS active,
        coalesce(a.churned, 0) AS activity_churned,
        coalesce(a.unknown, 0) AS activity_unknown,
        CAST(a.churned AS DOUBLE) / nullif(a.active - a.unknown, 0) AS activity_churn_rate
    FROM explicit e
    LEFT JOIN activity a
      ON a.month_start = e.month_start AND a.region = e.region
     AND a.segment = e.segment AND a.tier = e.tier
    WHERE e.at_start + e.new_customers > 0
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.month, result.region, result.segment, result.tier
