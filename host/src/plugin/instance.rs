//! A fresh instance of the plugin and the way to its exports.
//!
//! Every call is one export of one interface, so only that interface is looked
//! up and type-checked on the instance. The generated `Plugin` would check
//! every export of the world on every instantiation; in a profile of gets that
//! was 4% of sandboxd's CPU (`PluginIndices::load`), for interfaces the call
//! never touches. Whether the component has all of them is still checked once,
//! when it is loaded (`PluginPre::new`).

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use crate::bindings::exports::sandboxd::plugin::{
    callbacks, conversations, info, lifecycle, sandboxes, specs, sync,
};
use crate::imports::HostState;

/// Where each exported interface's functions are in the component, found once
/// per loaded plugin.
#[derive(Clone)]
pub struct ExportIndices {
    info: info::GuestIndices,
    sandboxes: sandboxes::GuestIndices,
    specs: specs::GuestIndices,
    conversations: conversations::GuestIndices,
    callbacks: callbacks::GuestIndices,
    sync: sync::GuestIndices,
    lifecycle: lifecycle::GuestIndices,
}

impl ExportIndices {
    pub fn new(pre: &InstancePre<HostState>) -> wasmtime::Result<ExportIndices> {
        Ok(ExportIndices {
            info: info::GuestIndices::new(pre)?,
            sandboxes: sandboxes::GuestIndices::new(pre)?,
            specs: specs::GuestIndices::new(pre)?,
            conversations: conversations::GuestIndices::new(pre)?,
            callbacks: callbacks::GuestIndices::new(pre)?,
            sync: sync::GuestIndices::new(pre)?,
            lifecycle: lifecycle::GuestIndices::new(pre)?,
        })
    }
}

/// One fresh instance; each method loads one interface's exports from it.
pub struct PluginInstance {
    instance: Instance,
    indices: ExportIndices,
}

impl PluginInstance {
    pub(super) fn new(instance: Instance, indices: ExportIndices) -> PluginInstance {
        PluginInstance { instance, indices }
    }

    pub fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<info::Guest> {
        self.indices.info.load(store, &self.instance)
    }

    pub fn sandboxes(&self, store: &mut Store<HostState>) -> wasmtime::Result<sandboxes::Guest> {
        self.indices.sandboxes.load(store, &self.instance)
    }

    pub fn specs(&self, store: &mut Store<HostState>) -> wasmtime::Result<specs::Guest> {
        self.indices.specs.load(store, &self.instance)
    }

    pub fn conversations(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<conversations::Guest> {
        self.indices.conversations.load(store, &self.instance)
    }

    pub fn callbacks(&self, store: &mut Store<HostState>) -> wasmtime::Result<callbacks::Guest> {
        self.indices.callbacks.load(store, &self.instance)
    }

    pub fn sync(&self, store: &mut Store<HostState>) -> wasmtime::Result<sync::Guest> {
        self.indices.sync.load(store, &self.instance)
    }

    pub fn lifecycle(&self, store: &mut Store<HostState>) -> wasmtime::Result<lifecycle::Guest> {
        self.indices.lifecycle.load(store, &self.instance)
    }
}
