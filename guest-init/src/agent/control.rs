//! The control connection to the host: frames in (on a reader thread),
//! frames out (from any thread, one at a time).

use std::fs::File;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;

use husk_protocol::{read_frame, write_frame, GuestMessage, HostMessage};

use super::Input;

/// The sending half; clones share the connection.
#[derive(Clone)]
pub struct Control {
    writer: Arc<Mutex<File>>,
}

impl Control {
    /// Starts the reader thread, which turns every frame into an
    /// [`Input::Request`] and the end of the connection (or a frame it
    /// cannot decode, which ends it too) into [`Input::ControlClosed`].
    pub fn start(connection: File, inputs: Sender<Input>) -> std::io::Result<Control> {
        let reader = connection.try_clone()?;
        thread::Builder::new()
            .name("control-reader".into())
            .spawn(move || read_requests(reader, inputs))?;
        Ok(Control {
            writer: Arc::new(Mutex::new(connection)),
        })
    }

    /// Sends one message. A failure means the host is gone, which the
    /// reader reports as the end of the connection.
    pub fn send(&self, message: &GuestMessage) {
        if let Ok(mut writer) = self.writer.lock() {
            if let Err(error) = write_frame(&mut *writer, message) {
                eprintln!("husk-init: send to the host: {error}");
            }
        }
    }
}

fn read_requests(mut reader: File, inputs: Sender<Input>) {
    let reason = loop {
        match read_frame::<_, HostMessage>(&mut reader) {
            Ok(Some(message)) => {
                if inputs.send(Input::Request(message)).is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(error.to_string()),
        }
    };
    let _ = inputs.send(Input::ControlClosed(reason));
}
