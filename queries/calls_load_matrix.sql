-- purpose: Hotline load and answer rate by local weekday and hour, for staffing.
-- formula: offered = inbound calls that reached a queue; answered = offered calls with
--   answered_at; answer rate = answered / offered; offered per day = offered / days of
--   that weekday with offered calls in the range.
-- grain: one row per weekday (1 = Monday … 7 = Sunday) x local hour (0–23) with offered calls
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
WITH per_hour AS (
    -- One row per local day x hour: the calls are read once.
    SELECT
        local_weekday(ivr_entered_at) AS weekday,
        local_hour(ivr_entered_at) AS hour,
        local_date(ivr_entered_at) AS day,
        count(*) AS offered,
        count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered
    FROM calls
    WHERE direction = 'inbound'
      AND queued_at IS NOT NULL
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, 2, 3
),
counted AS (
    -- Days of each weekday with calls: each day counted at its first hour.
    SELECT weekday, hour, offered, answered,
           sum(CASE WHEN first_hour THEN 1 ELSE 0 END) OVER (PARTITION BY weekday) AS days
    FROM (
        SELECT *, row_number() OVER (PARTITION BY weekday, day ORDER BY hour) = 1 AS first_hour
        FROM per_hour
    ) flagged
)
SELECT
    weekday,
    hour,
    sum(offered) AS offered,
    sum(answered) AS answered,
    CAST(sum(answered) AS DOUBLE) / sum(offered) AS answer_rate,
    CAST(sum(offered) AS DOUBLE) / max(days) AS offered_per_day
FROM counted
GROUP BY weekday, hour
ORDER BY weekday, hour
