// Hardhat 3 configuration. Compiles offline with the npm `solc` package (solc-js),
// so no compiler is ever downloaded; `prague` so py-evm runs the bytecode too.
import { createRequire } from "node:module";
import { defineConfig } from "hardhat/config";
import hardhatEthers from "@nomicfoundation/hardhat-ethers";
import hardhatEthersChaiMatchers from "@nomicfoundation/hardhat-ethers-chai-matchers";
import hardhatMocha from "@nomicfoundation/hardhat-mocha";
import hardhatNetworkHelpers from "@nomicfoundation/hardhat-network-helpers";

const require = createRequire(import.meta.url);
const solcVersion = require("solc/package.json").version;

export default defineConfig({
  plugins: [hardhatEthers, hardhatEthersChaiMatchers, hardhatMocha, hardhatNetworkHelpers],
  solidity: {
    version: solcVersion,
    path: require.resolve("solc/soljson.js"),
    settings: {
      evmVersion: "prague",
      optimizer: { enabled: true, runs: 200 },
    },
  },
  paths: {
    sources: "./contracts",
    tests: { mocha: "./tests/contracts", solidity: "./contracts/test" },
  },
  networks: {
    localhost: { type: "http", url: "http://127.0.0.1:8545" },
  },
});
