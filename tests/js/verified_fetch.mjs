// Fetches CIDs from trustless gateways with @helia/verified-fetch, which checks every block
// against its CID, and prints one line per CID: `<sha256 hex> <size>`, or
// `error <name>: <message>` when verified-fetch refused. Arguments are groups: a gateway
// URL, then the CIDs to fetch from it (one Helia node per gateway, so a lying gateway
// cannot feed another's cache). No network beyond those gateways: no delegated routers,
// the gateway is the only (fallback) provider, and libp2p/bitswap are never started
// (the Helia node is built by @helia/http, HTTP only). Exit code 0 even when a fetch
// failed: the caller judges each line. `--timeout MS` (default 15000) applies to the
// groups after it: a Helia session whose only gateway sent a bad block waits for another
// provider instead of failing, so a fetch from a lying gateway ends by this timeout.
// Usage: node tests/js/verified_fetch.mjs [--timeout MS] GATEWAY_URL CID... [...]
import { createHash } from 'node:crypto'
import { load } from './jsref.mjs'

const groups = []
let timeout = 15000
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--timeout') timeout = Number(args[++i])
  else if (/^https?:\/\//.test(args[i])) groups.push({ gateway: args[i], cids: [], timeout })
  else if (groups.length > 0) groups[groups.length - 1].cids.push(args[i])
}
if (groups.length === 0 || groups.some((g) => g.cids.length === 0)) {
  console.error('usage: verified_fetch.mjs GATEWAY_URL CID... [GATEWAY_URL CID...]...')
  process.exit(2)
}
const { createHeliaLight } = await load('helia')
const { withHTTP } = await load('@helia/http')
const { createVerifiedFetchWithHelia } = await load('@helia/verified-fetch')

async function fetchAll ({ gateway, cids, timeout }) {
  const light = createHeliaLight()
  // Helia 7 waits forever when its only router is the fallback one that lists the gateway
  // (its idle signal comes from a finished non-fallback router): add one that knows no
  // providers, so every lookup falls through to the gateway at once.
  light.addRouter({ name: 'no-providers', findProviders: async function * () {} })
  const helia = await withHTTP(light, {
    delegatedRouters: [],
    recursiveGateways: [gateway],
    allowInsecure: true, // plain http to 127.0.0.1
    allowLocal: true
  }).start()
  const verifiedFetch = await createVerifiedFetchWithHelia(helia)
  for (const cid of cids) {
    // a referenced timer: AbortSignal.timeout's does not keep Node's event loop alive
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), timeout)
    try {
      const response = await verifiedFetch(`ipfs://${cid}`, { signal: controller.signal })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const bytes = new Uint8Array(await response.arrayBuffer())
      console.log(createHash('sha256').update(bytes).digest('hex'), bytes.length)
    } catch (err) {
      console.log(`error ${err.name}: ${String(err.message).split('\n')[0]}`)
    } finally {
      clearTimeout(timer)
    }
  }
  await helia.stop()
}

for (const group of groups) await fetchAll(group)
