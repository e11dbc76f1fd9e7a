//! The client-side-rendered entry that Trunk builds: the same pages and island, rendered in
//! the browser, talking to a running Messenger server through Trunk's proxy.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(messenger::app::CsrApp);
}
