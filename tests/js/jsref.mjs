// Loads npm packages for the reference checks from the repo's node_modules or, while a
// package is not yet a devDependency, from the node_modules folder named by
// OPENTRAIN_JS_MODULES. ESM ignores NODE_PATH, so this resolves the package's `exports`
// entry itself.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const repoModules = fileURLToPath(new URL('../../node_modules', import.meta.url))
const roots = [process.env.OPENTRAIN_JS_MODULES, repoModules].filter(Boolean)

function entryOf (pkg, subpath) {
  const exp = pkg.exports
  let entry = exp && typeof exp === 'object' && !Array.isArray(exp) && Object.keys(exp)[0]?.startsWith('.')
    ? exp[subpath]
    : (subpath === '.' ? exp : undefined)
  while (entry && typeof entry === 'object') entry = entry.import ?? entry.node ?? entry.default
  return entry ?? (subpath === '.' ? (pkg.module ?? pkg.main ?? 'index.js') : subpath)
}

/** import(name[/subpath]) from the first node_modules folder that has the package. */
export async function load (name, subpath = '.') {
  for (const root of roots) {
    for (const base of [root, join(root, 'ipfs-car', 'node_modules')]) {
      const dir = join(base, name)
      if (!existsSync(join(dir, 'package.json'))) continue
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      return import(pathToFileURL(join(dir, entryOf(pkg, subpath))).href)
    }
  }
  throw new Error(`npm package ${name} not found in ${roots.join(', ')}`)
}

/** Path of a file inside an installed package (e.g. a CLI's bin script). */
export function packageFile (name, file) {
  for (const root of roots) {
    const path = join(root, name, file)
    if (existsSync(path)) return path
  }
  throw new Error(`npm package ${name} not found in ${roots.join(', ')}`)
}
