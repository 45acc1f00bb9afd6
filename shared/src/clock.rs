//! Elapsed time for the report. `std::time::Instant` panics on wasm32-unknown-unknown, so the
//! browser build reads the JavaScript clock instead.

#[cfg(not(target_arch = "wasm32"))]
pub struct Stopwatch(std::time::Instant);

#[cfg(not(target_arch = "wasm32"))]
impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 1000.0
    }
}

#[cfg(target_arch = "wasm32")]
pub struct Stopwatch(f64);

#[cfg(target_arch = "wasm32")]
impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(js_sys::Date::now())
    }

    pub fn elapsed_ms(&self) -> f64 {
        js_sys::Date::now() - self.0
    }
}
