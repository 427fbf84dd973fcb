-- purpose: Complaint volume per period and region, with the change against the previous
--   period (环比) and against the same period a year earlier (同比).
-- formula: complaints = tickets of kind 'complaint' by local day of created_at;
--   change = (this period - comparison period) / comparison period, NULL when the
--   comparison period had none; a week's year-earlier period is 52 weeks before.
-- grain: one row per period (day, week starting Monday, month, quarter or year) x region with complaints
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter or year
-- param: region text % region code (LIKE pattern; % for all)
WITH counts AS (
    SELECT
        local_trunc({{period}}, created_at) AS period,
        region,
        count(*) AS complaints
    FROM tickets
    WHERE kind = 'complaint'
      AND created_at >= {{from:utc}} - INTERVAL '13 months'
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
    GROUP BY 1, region
)
SELECT
    c.period,
    c.region,
    c.complaints,
    coalesce(p.complaints, 0) AS previous_period,
    CAST(c.complaints - p.complaints AS DOUBLE) / p.complaints AS change_vs_previous,
    coalesce(y.complaints, 0) AS year_earlier,
    CAST(c.complaints - y.complaints AS DOUBLE) / y.complaints AS change_vs_year_earlier
FROM counts c
LEFT JOIN counts p
    ON p.region = c.region
   AND p.period = CAST(CAST(c.period AS TIMESTAMP) - CASE {{period}}
        WHEN 'day' THEN INTERVAL '1 day'
        WHEN 'week' THEN INTERVAL '7 days'
        WHEN 'month' THEN INTERVAL '1 month'
        WHEN 'quarter' THEN INTERVAL '3 months'
        ELSE INTERVAL '1 year' END AS DATE)
LEFT JOIN counts y
    ON y.region = c.region
   AND y.period = CAST(CAST(c.period AS TIMESTAMP) - CASE {{period}}
        WHEN 'week' THEN INTERVAL '364 days'
        ELSE INTERVAL '1 year' END AS DATE)
WHERE c.period >= CAST(date_trunc({{period}}, CAST({{from}} AS TIMESTAMP)) AS DATE)
ORDER BY c.period, c.region
