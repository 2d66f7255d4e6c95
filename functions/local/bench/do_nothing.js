// The do-nothing handler of bench/latency.sh: Express, answering every POST 200 without
// verifying, parsing or storing anything (what the issue-25 table compares against).
// usage: node do_nothing.js PORT   (with express resolvable from NODE_PATH)
const express = require("express");
const app = express();
app.post("*splat", (req, res) => res.status(200).send("ok"));
app.listen(Number(process.argv[2]), "127.0.0.1");
