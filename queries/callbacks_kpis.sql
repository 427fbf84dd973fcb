-- purpose: Callbacks (回访) after completed work orders and complaints: coverage,
--   timeliness, satisfaction, and manual follow-up of failed automatic callbacks.
-- formula: completed = tickets of kind 'work_order' or 'complaint' with resolved_at in
--   the period; coverage = completed tickets with at least one callback / completed;
--   same day = first callback on the local day of resolved_at; within 3 days = first
--   callback no later than resolved_at + {within_days} days (both / completed with a
--   callback); satisfaction = (very_satisfied + satisfied) / (very_satisfied +
--   satisfied + dissatisfied) over the period's scored callbacks of those tickets;
--   failed automatic = auto_voice or sms callbacks with status no_answer; followed up =
--   those whose ticket got a manual callback afterwards.
-- grain: one row per period (local day, week or month of resolved_at) x region
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week or month
-- param: region text % region code (LIKE pattern; % for all)
-- param: within_days int 3 days after completion a callback may take
WITH done AS (
    SELECT ticket_id, region, resolved_at,
           CAST(date_trunc({{period}}, CAST(local_date(resolved_at) AS TIMESTAMP)) AS DATE) AS period
    FROM tickets
    WHERE kind IN ('work_order', 'complaint')
      AND resolved_at >= {{from:utc}}
      AND resolved_at < {{to:utc}}
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
),
cb AS (
    SELECT c.*, d.period, d.resolved_at, d.region AS ticket_region
    FROM callbacks c
    JOIN done d ON d.ticket_id = c.ticket_id
),
per_ticket AS (
    SELECT d.ticket_id, d.period, d.region, d.resolved_at, min(cb.performed_at) AS first_callback_at
    FROM done d
    LEFT JOIN cb ON cb.ticket_id = d.ticket_id
    GROUP BY d.ticket_id, d.period, d.region, d.resolved_at
),
failed AS (
    SELECT f.period, f.ticket_region AS region, f.callback_id,
           max(CASE WHEN m.callback_id IS NULL THEN 0 ELSE 1 END) AS followed_up
    FROM cb f
    LEFT JOIN cb m
      ON m.ticket_id = f.ticket_id AND m.method = 'manual' AND m.performed_at > f.performed_at
    WHERE f.method IN ('auto_voice', 'sms') AND f.status = 'no_answer'
    GROUP BY f.period, f.ticket_region, f.callback_id
),
failed_counts AS (
    SELECT period, region, count(*) AS failed_automatic, sum(followed_up) AS failed_followed_up
    FROM failed GROUP BY period, region
),
scores AS (
    SELECT period, ticket_region AS region,
           count(*) FILTER (WHERE score IN ('very_satisfied', 'satisfied')) AS satisfied,
           count(*) FILTER (WHERE score = 'dissatisfied') AS dissatisfied
    FROM cb
    GROUP BY period, ticket_region
)
SELECT
    p.period,
    p.region,
    count(*) AS completed,
    count(p.first_callback_at) AS called_back,
    CAST(count(p.first_callback_at) AS DOUBLE) / count(*) AS coverage,
    CAST(count(*) FILTER (WHERE local_date(p.first_callback_at) = local_date(p.resolved_at)) AS DOUBLE)
        / nullif(count(p.first_callback_at), 0) AS same_day_rate,
    CAST(count(*) FILTER (WHERE p.first_callback_at <= p.resolved_at + {{within_days:days}}) AS DOUBLE)
        / nullif(count(p.first_callback_at), 0) AS within_days_rate,
    max(s.satisfied) AS satisfied,
    max(s.dissatisfied) AS dissatisfied,
    CAST(max(s.satisfied) AS DOUBLE) / nullif(max(s.satisfied) + max(s.dissatisfied), 0) AS satisfaction,
    coalesce(max(f.failed_automatic), 0) AS failed_automatic,
    coalesce(max(f.failed_followed_up), 0) AS failed_followed_up
FROM per_ticket p
LEFT JOIN scores s ON s.period = p.period AND s.region = p.region
LEFT JOIN failed_counts f ON f.period = p.period AND f.region = p.region
GROUP BY p.period, p.region
ORDER BY p.period, p.region
