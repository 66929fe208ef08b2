//! The one wasmtime [`Engine`] of the process, and the clock that interrupts
//! plugin calls.
//!
//! Choices, and why:
//! - Pooling allocator: instance slots (memory, tables, fiber stack) are reserved
//!   once, so a fresh instance per request costs microseconds. It reserves
//!   address space up front (`max_instances` × (memory limit + guard)); where the
//!   process's address space is too small for that (a `ulimit -v`, a 32-bit
//!   host), the engine falls back to allocating on demand, slower but correct.
//! - Each memory slot is exactly the per-call memory limit, so the pool itself
//!   enforces it; Cranelift then emits explicit bounds checks instead of relying
//!   on a 4 GiB guard region per slot, a fair price for a pool that fits.
//! - Epoch interruption: a ticker thread advances the epoch every
//!   [`TICK`]; a call checks its deadline on each tick and otherwise yields to
//!   the async executor, so a plugin in a tight loop neither blocks a worker
//!   thread for long nor outlives its deadline.
//! - No component-model-async (it is not compiled in, and `concurrency_support`
//!   is off): it costs several times on every call and the WIT does not use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::PluginConfig;

/// How often the epoch advances: the granularity of deadlines and of yielding.
pub const TICK: Duration = Duration::from_millis(10);

/// Bytes of a memory or table slot reset in place rather than unmapped: what
/// most calls of the plugin dirty (its stack, its data and a little heap). Each
/// warm slot keeps this much resident, and under load every slot gets warm: at
/// 4 MiB the load test's resident size climbed past 440 MiB and kept climbing;
/// at 256 KiB it levels off near 230 MiB at the same throughput.
const KEEP_RESIDENT: usize = 256 << 10;

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    Pooling,
    OnDemand,
}

/// The engine, how it allocates, and its epoch clock.
#[derive(Clone)]
pub struct EngineHandle {
    pub engine: Engine,
    pub allocator: Allocator,
    pub clock: Arc<EpochClock>,
}

impl EngineHandle {
    pub fn new(cfg: &PluginConfig) -> anyhow::Result<EngineHandle> {
        let (engine, allocator) = match Engine::new(&pooling_config(cfg)) {
            Ok(engine) => (engine, Allocator::Pooling),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the pooling allocator could not reserve its memory; falling back to on-demand allocation (slower instantiation)"
                );
                (Engine::new(&base_config())?, Allocator::OnDemand)
            }
        };
        let clock = EpochClock::start(engine.clone())?;
        Ok(EngineHandle {
            engine,
            allocator,
            clock,
        })
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(false);
    if std::env::var_os("SANDBOXD_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

fn pooling_config(cfg: &PluginConfig) -> Config {
    let instances = cfg.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // A Rust component is a handful of core modules (the program and the
        // adapter shims), one memory and a few tables.
        .max_core_instances_per_component(16)
        .total_core_instances(instances.saturating_mul(16))
        .max_memories_per_component(2)
        .total_memories(instances.saturating_mul(2))
        .max_tables_per_component(8)
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memory_size(cfg.memory_limit_bytes)
        // Reset a slot's dirty pages in place instead of unmapping them, so the
        // next call on the slot takes no page faults (PAGEMAP_SCAN finds the
        // dirty pages on Linux 6.7+; elsewhere the low addresses are reset).
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // Several slots' unmappings share one TLB shootdown.
        .decommit_batch_size(16);
    let mut config = base_config();
    config.memory_reservation(cfg.memory_limit_bytes as u64);
    config.memory_guard_size(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch every [`TICK`] and counts ticks, so deadlines can
/// be expressed as a tick number. The ticker thread stops once the last handle
/// to the clock is gone.
pub struct EpochClock {
    ticks: AtomicU64,
}

impl EpochClock {
    fn start(engine: Engine) -> anyhow::Result<Arc<EpochClock>> {
        let clock = Arc::new(EpochClock {
            ticks: AtomicU64::new(0),
        });
        let weak: Weak<EpochClock> = Arc::downgrade(&clock);
        std::thread::Builder::new()
            .name("sandboxd-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    let Some(clock) = weak.upgrade() else { break };
                    clock.ticks.fetch_add(1, Ordering::Relaxed);
                    engine.increment_epoch();
                }
            })?;
        Ok(clock)
    }

    pub fn now(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// The tick by which `timeout` from now has passed.
    pub fn deadline(&self, timeout: Duration) -> u64 {
        let ticks = timeout.as_millis().div_ceil(TICK.as_millis()).max(1);
        self.now()
            .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
    }
}
