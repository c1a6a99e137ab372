fn main() {
    print!("{}", esox::api::crd::to_yaml());
}
