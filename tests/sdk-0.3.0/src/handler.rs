//! Turning plain async functions into panic-safe [`HandlerBox`]es.

use std::{
    any::Any,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
};

use abi_stable::sabi_trait::TD_Opaque;
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;

use crate::{
    abi::{Handler, HandlerBox, Handler_TO, Host, LogLevel, Request, Response},
    HostExt as _,
};

/// Wraps an `async fn(Host, Request) -> Response` into a handler that never lets a panic
/// cross the boundary: a panic in the call or inside the future answers
/// `500 {"error": "plugin <name> failed: internal error (logged on the server)"}`; the panic's
/// text goes to the host's log only (it may hold paths or data no client should see).
pub fn handler<F, Fut>(f: F) -> HandlerBox
where
    F: Fn(Host, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Handler_TO::from_value(FnHandler(f), TD_Opaque)
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Host, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    fn call(&self, host: Host, req: Request) -> FfiFuture<Response> {
        let log = host.clone();
        match catch_unwind(AssertUnwindSafe(|| (self.0)(host, req))) {
            Ok(fut) => AssertUnwindSafe(fut)
                .catch_unwind()
                .map(move |outcome| outcome.unwrap_or_else(|panic| panic_response(&log, &*panic)))
                .into_ffi(),
            Err(panic) => {
                let response = panic_response(&log, &*panic);
                async move { response }.into_ffi()
            }
        }
    }
}

fn panic_response(host: &Host, panic: &(dyn Any + Send)) -> Response {
    let plugin = host.plugin_name().into_string();
    host.log(LogLevel::Error, &format!("plugin {plugin} panicked: {}", panic_message(panic)));
    Response::error(500, format!("plugin {plugin} failed: internal error (logged on the server)"))
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
