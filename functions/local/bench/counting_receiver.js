// The notification receiver of bench/repeats.sh: answers every POST 200 and counts the
// requests per `webhook-id`; GET /stats answers {"requests", "distinct", "repeats"}.
// No signature check (the soak's receiver does that); this one only counts repeats.
// usage: node counting_receiver.js PORT
const http = require("http");
const seen = new Map();
let requests = 0;
http
  .createServer((req, res) => {
    if (req.method === "GET") {
      const body = JSON.stringify({ requests, distinct: seen.size, repeats: requests - seen.size });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
      return;
    }
    req.resume();
    req.on("end", () => {
      const id = req.headers["webhook-id"] || "";
      requests += 1;
      seen.set(id, (seen.get(id) || 0) + 1);
      res.writeHead(200).end();
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
