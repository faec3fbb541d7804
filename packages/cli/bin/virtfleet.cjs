#!/usr/bin/env node
/* global process */
// The virtfleet command. A CommonJS launcher because libuv sizes its thread pool from
// UV_THREADPOOL_SIZE on first use, and the ES module loader uses the pool before any module
// body runs. libvirt's binding holds a pool thread for every call in progress; with libuv's
// default of 4, a few calls stuck on a frozen libvirtd would leave none for file and crypto work.
process.env.UV_THREADPOOL_SIZE ??= '16';
import('../dist/main.js');
