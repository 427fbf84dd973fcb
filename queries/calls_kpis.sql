-- purpose: Hotline volume and service per period, region and queue: offered, answered,
--   abandoned, answer rate, service level, ASA and AHT.
-- formula: offered = inbound calls that reached a queue (queued_at set);
--   answered = offered calls with answered_at; abandoned = outcome 'abandoned';
--   short abandons = abandoned after waiting less than {short} s;
--   answer rate = answered / offered; abandon rate = abandoned / offered;
--   service level = answered within T s of queueing / offered, where T is the queue's
--   own threshold (queues.service_level_s) and {t} for a queue without one;
--   service level excluding short abandons = answered within T s / (offered - short abandons);
--   service_level_t is the T used and service_level_target the queue's target (queues,
--   a share; NULL when none is set);
--   ASA = total wait of answered / answered; AHT = (talk + hold + wrap) of answered / answered.
--   The counts behind the rates come with them (answered_within_t, answered_wait_s), so
--   that rows add up into any coarser grain: sum the counts, then divide.
--   Rates are NULL when their denominator is 0.
-- grain: one row per period (local day, ISO week starting Monday, month, quarter, half year or year of ivr_entered_at) x region x queue
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text day day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: t int 20 service-level threshold in seconds for queues the queues table sets none for
-- param: short int 5 an abandon after less than this many seconds of waiting is short
WITH offered AS (
    SELECT
        local_trunc({{period}}, ivr_entered_at) AS period,
        region,
        calls.queue,
        coalesce(q.service_level_s, {{t}}) AS t_s,
        q.service_level_target,
        answered_at IS NOT NULL AS answered,
        outcome = 'abandoned' AS abandoned,
        wait_s,
        talk_s,
        hold_s,
        wrap_s
    FROM calls
    LEFT JOIN queues q ON q.queue = calls.queue
    WHERE direction = 'inbound'
      AND queued_at IS NOT NULL
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
result AS (
    SELECT
        period,
        region,
        queue,
        count(*) AS offered,
        count(*) FILTER (WHERE answered) AS answered,
        count(*) FILTER (WHERE abandoned) AS abandoned,
        count(*) FILTER (WHERE abandoned AND wait_s < {{short}}) AS short_abandons,
        count(*) FILTER (WHERE answered AND wait_s <= t_s) AS answered_within_t,
        sum(wait_s) FILTER (WHERE answered) AS answered_wait_s,
        CAST(count(*) FILTER (WHERE answered) AS DOUBLE) / nullif(count(*), 0) AS answer_rate,
        CAST(count(*) FILTER (WHERE abandoned) AS DOUBLE) / nullif(count(*), 0) AS abandon_rate,
        CAST(count(*) FILTER (WHERE answered AND wait_s <= t_s) AS DOUBLE)
            / nullif(count(*), 0) AS service_level,
        CAST(count(*) FILTER (WHERE answered AND wait_s <= t_s) AS DOUBLE)
            / nullif(count(*) - count(*) FILTER (WHERE abandoned AND wait_s < {{short}}), 0)
            AS service_level_excl_short,
        max(t_s) AS service_level_t,
        max(service_level_target) / 100.0 AS service_level_target,
        CAST(sum(wait_s) FILTER (WHERE answered) AS DOUBLE)
            / nullif(count(*) FILTER (WHERE answered), 0) AS asa_s,
        CAST(sum(coalesce(talk_s, 0) + coalesce(hold_s, 0) + coalesce(wrap_s, 0)) FILTER (WHERE answered) AS DOUBLE)
            / nullif(count(*) FILTER (WHERE answered), 0) AS aht_s
    FROM offered
    GROUP BY period, region, queue
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_queue.name_zh, ''), result.queue) AS queue_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN queues n_queue ON n_queue.queue = result.queue
ORDER BY result.period, result.region, result.queue
