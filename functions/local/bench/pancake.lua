-- wrk script of bench/latency.sh: every request a new Pancake `messaging` delivery (a new
-- conversation and message, so each one is a durable write, never a duplicate), and one
-- machine-readable result line with p50/p99/p99.9/max.
local run = tostring(os.time())
local n = 0

request = function()
  n = n + 1
  local id = run .. string.format("%09d", n)
  local body = '{"event_type":"messaging","page_id":"104582318532114","data":{"conversation":{'
    .. '"id":"104582318532114_' .. id .. '","page_id":"104582318532114","type":"INBOX",'
    .. '"from":{"id":"' .. id .. '","name":"Nguyễn Thị Lan"},"snippet":"Mình lấy 2 cái size M nhé",'
    .. '"seen":false,"inserted_at":"2025-09-01T08:12:40.000000","updated_at":"2025-09-05T10:45:00.000000"},'
    .. '"message":{"id":"m_' .. id .. '","conversation_id":"104582318532114_' .. id .. '",'
    .. '"from":{"id":"' .. id .. '","name":"Nguyễn Thị Lan"},"message":"Mình lấy 2 cái size M nhé",'
    .. '"original_message":"Mình lấy 2 cái size M nhé","type":"inbox","attachments":[],'
    .. '"inserted_at":"2025-09-05T10:45:00.000000"}}}'
  return wrk.format("POST", "/api/v1/pancake/webhook",
    {["Content-Type"] = "application/json", ["X-API-Key"] = "dev-pancake-key"}, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d errors=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f\n",
    summary.requests, errors, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
