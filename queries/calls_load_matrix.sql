-- purpose: Hotline load and answer rate by local weekday and hour, for staffing.
-- formula: offered = inbound calls that reached a queue; answered = offered calls with
--   answered_at; answer rate = answered / offered; offered per day = offered / days of
--   that weekday with offered calls in the range.
-- grain: one row per weekday (1 = Monday … 7 = Sunday) x local hour (0–23) with offered calls
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
WITH offered AS (
    SELECT
        local_weekday(ivr_entered_at) AS weekday,
        local_hour(ivr_entered_at) AS hour,
        local_date(ivr_entered_at) AS day,
        answered_at IS NOT NULL AS answered
    FROM calls
    WHERE direction = 'inbound'
      AND queued_at IS NOT NULL
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
days AS (
    SELECT weekday, count(DISTINCT day) AS days FROM offered GROUP BY weekday
)
SELECT
    o.weekday,
    o.hour,
    count(*) AS offered,
    count(*) FILTER (WHERE o.answered) AS answered,
    CAST(count(*) FILTER (WHERE o.answered) AS DOUBLE) / count(*) AS answer_rate,
    CAST(count(*) AS DOUBLE) / max(d.days) AS offered_per_day
FROM offered o
JOIN days d ON d.weekday = o.weekday
GROUP BY o.weekday, o.hour
ORDER BY o.weekday, o.hour
