// Packs files into CARs with ipfs-car's own pack pipeline (createFileEncoderStream and
// CAREncoderStream, which `ipfs-car pack --no-wrap` runs) but with kubo's
// `ipfs add --cid-version 1` parameters instead of ipfs-car's defaults (1 MiB chunks,
// 1024 links): raw leaves, 256 KiB chunks, balanced layout of 174 links. Prints each root.
// Usage: node tests/js/car_pack.mjs FILE OUT.car [FILE OUT.car]...
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { load } from './jsref.mjs'

const args = process.argv.slice(2)
if (args.length === 0 || args.length % 2 !== 0) {
  console.error('usage: car_pack.mjs FILE OUT.car [FILE OUT.car]...')
  process.exit(2)
}
const { createFileEncoderStream, CAREncoderStream } = await load('ipfs-car')
const UnixFS = await load('@ipld/unixfs')
const { withMaxChunkSize } = await load('@ipld/unixfs', './file/chunker/fixed')
const { withWidth } = await load('@ipld/unixfs', './file/layout/balanced')
const raw = { name: 'raw', code: 0x55, encode: (bytes) => bytes, decode: (bytes) => bytes }
const settings = UnixFS.configure({
  fileChunkEncoder: raw,
  smallFileEncoder: raw,
  chunker: withMaxChunkSize(262144),
  fileLayout: withWidth(174)
})

async function pack (file, out) {
  // The root is known only at the end (ipfs-car patches it into the file afterwards):
  // collect the blocks, then write the CAR with the real root in its header.
  const blocks = []
  for await (const block of createFileEncoderStream(new Blob([await readFile(file)]), settings)) {
    blocks.push(block)
  }
  const root = blocks[blocks.length - 1].cid
  const car = new CAREncoderStream([root])
  const writer = car.writable.getWriter()
  const done = car.readable.pipeTo(Writable.toWeb(createWriteStream(out)))
  for (const block of blocks) await writer.write(block)
  await writer.close()
  await done
  return root
}

for (let i = 0; i < args.length; i += 2) console.log((await pack(args[i], args[i + 1])).toString())
