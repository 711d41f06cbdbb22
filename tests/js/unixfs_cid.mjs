// Reference CIDs for tests/test_store.py: prints, one line per FILE, the root CID that
// the npm ipfs-unixfs-importer computes with kubo's
// `ipfs add --cid-version 1 --raw-leaves` parameters passed explicitly
// (256 KiB fixed-size chunks, balanced layout, at most 174 links per node).
// Usage: node tests/js/unixfs_cid.mjs [--chunk-size N] [--max-children N] FILE...
// (the two options exist only to test deep trees with small files).
import { readFile } from 'node:fs/promises'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

let chunkSize = 262144
let maxChildrenPerNode = 174
const files = []
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--chunk-size') chunkSize = Number(args[++i])
  else if (args[i] === '--max-children') maxChildrenPerNode = Number(args[++i])
  else files.push(args[i])
}
if (files.length === 0) {
  console.error('usage: unixfs_cid.mjs [--chunk-size N] [--max-children N] FILE...')
  process.exit(2)
}
const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize }),
  layout: balanced({ maxChildrenPerNode })
}
for (const path of files) {
  const content = await readFile(path)
  let root
  for await (const entry of importer([{ content }], new MemoryBlockstore(), options)) {
    root = entry.cid
  }
  console.log(root.toString())
}
