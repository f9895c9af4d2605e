//! Path parameters named after the collection they index.

use serde_yaml::{Mapping, Value};

/// `{id}` meant a host in one path and a container in another: an `{id}` is named after the
/// collection it indexes (`/hosts/{host_id}`, `/containers/{container_id}`).
pub(super) fn name_path_params_after_their_collection(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_mapping_mut() else {
        return;
    };
    let renamed: Mapping = std::mem::take(paths)
        .into_iter()
        .map(|(path, mut item)| {
            let path = path.as_str().unwrap_or_default();
            let segments: Vec<&str> = path.split('/').collect();
            let mut new_path = Vec::with_capacity(segments.len());
            for (i, segment) in segments.iter().enumerate() {
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(old @ "id") if i > 0 => {
                        let collection = segments[i - 1];
                        let new =
                            format!("{}_id", collection.strip_suffix('s').unwrap_or(collection));
                        rename_path_param(&mut item, old, &new);
                        new_path.push(format!("{{{new}}}"));
                    }
                    _ => new_path.push((*segment).to_owned()),
                }
            }
            (Value::from(new_path.join("/")), item)
        })
        .collect();
    *paths = renamed;
}

fn rename_path_param(item: &mut Value, old: &str, new: &str) {
    let Some(item) = item.as_mapping_mut() else {
        return;
    };
    for (_, operation) in item.iter_mut() {
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for parameter in parameters {
            if parameter["in"] == "path" && parameter["name"] == old {
                parameter["name"] = new.into();
            }
        }
    }
}
