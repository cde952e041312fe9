// The publisher of frames.spec's burst, as its own process so that the spec can run it below
// the browser's priority (on a real deployment the sync jobs that publish are not on the
// planner's machine). Node's fetch costs about half a millisecond of CPU a request; in the
// test's own process the burst's 1,000 requests took that from the page's two CPUs.
//
//   node burst.mjs <baseURL> <cookie header> <count>
//
// Publishes <count> events to org-rio on keep-alive connections, 50 in flight at a time, then
// prints one JSON line: {"ms": <time from first request to last answer>, "statuses": {...}}.
const [baseURL, cookie, count] = process.argv.slice(2);

async function publish(data) {
  const response = await fetch(`${baseURL}/api/orgs/org-rio/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: baseURL, cookie },
    body: JSON.stringify(data),
  });
  await response.arrayBuffer();
  return response.status;
}

function event(i) {
  return i % 10 === 9
    ? { type: 'SYNC_SUCCESS', jobId: 'burst-job', pfaId: `PFA-0${String((i % 2000) + 1).padStart(4, '0')}`, message: 'Successfully synced' }
    : {
        type: 'SYNC_PROGRESS',
        jobId: 'burst-job',
        progress: Math.floor(i / 10),
        message: `Synced ${i} of ${count} records`,
        data: { jobStatus: 'running', total: Number(count), synced: i, conflicts: 0, failed: 0 },
      };
}

const started = Date.now();
const statuses = {};
let inFlight = [];
for (let i = 0; i < Number(count); i++) {
  inFlight.push(publish(event(i)));
  if (inFlight.length === 50) {
    for (const s of await Promise.all(inFlight)) statuses[s] = (statuses[s] ?? 0) + 1;
    inFlight = [];
  }
}
for (const s of await Promise.all(inFlight)) statuses[s] = (statuses[s] ?? 0) + 1;
process.stdout.write(`${JSON.stringify({ ms: Date.now() - started, statuses })}\n`);
