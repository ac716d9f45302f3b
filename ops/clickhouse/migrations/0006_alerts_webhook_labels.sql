-- Webhook URLs are secrets (a token in the path): alerts.webhook_status now names a webhook by
-- host[:port] and the first 8 hex digits of the SHA-256 of its URL (streams/webhooks.py
-- url_label), e.g. hooks.slack.com#3f2a9c1b. Rewrite the statuses written before, which held the
-- full URLs ("<url>: <outcome>; <url>: <outcome>"), into that form, in every version of a row;
-- then remove any URL an old error message may have quoted.
ALTER TABLE alerts UPDATE webhook_status = replaceRegexpAll(
    arrayStringConcat(arrayMap(
        p -> if(p.1 LIKE '%://%' AND p.2 != '',
                concat(domain(p.1), if(port(p.1) != 0, concat(':', toString(port(p.1))), ''),
                       '#', substring(lower(hex(SHA256(p.1))), 1, 8), p.2),
                concat(p.1, p.2)),
        arrayMap(part -> (splitByString(': ', part)[1], substring(part, length(splitByString(': ', part)[1]) + 1)),
                 splitByString('; ', webhook_status))), '; '),
    '[a-zA-Z][a-zA-Z0-9+.-]*://[^\\s;,\'"]+', '[url removed]')
WHERE webhook_status LIKE '%://%'
SETTINGS mutations_sync = 2
