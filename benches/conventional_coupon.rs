//! Placeholder replaced by the bench helper: the conventional coupon issue driven against MySQL.
fn main() {
    println!("conventional_coupon: not implemented yet");
}
