// The replica set and SkyHive's MongoDB user (deploy/compose.yaml's `mongo-init`, run with
// mongosh against mongo-1 as the root user). Idempotent: run it again and it changes nothing.
//
//   1. rs.initiate() of rs0 with the three members, unless it is initiated already;
//   2. wait (up to 120 s) for a primary;
//   3. the `skyhive` user (readWrite on SKYHIVE_MONGODB_DB), unless it exists.
//
// Environment (from deploy/.env): MONGO_ROOT_USERNAME, MONGO_ROOT_PASSWORD,
// MONGO_SKYHIVE_PASSWORD, SKYHIVE_MONGODB_DB.

const members = [
  { _id: 0, host: "mongo-1:27017", priority: 2 },
  { _id: 1, host: "mongo-2:27017", priority: 1 },
  { _id: 2, host: "mongo-3:27017", priority: 1 },
];

try {
  const status = rs.status();
  print(`replica set ${status.set} already initiated`);
} catch (e) {
  if (e.codeName !== "NotYetInitialized") {
    throw e;
  }
  printjson(rs.initiate({ _id: "rs0", members }));
}

function findPrimary() {
  try {
    const found = rs.status().members.find((m) => m.stateStr === "PRIMARY");
    return found ? found.name : null;
  } catch (e) {
    return null; // the new configuration is still being applied
  }
}

let primary = null;
for (let i = 0; i < 120 && primary === null; i++) {
  primary = findPrimary();
  if (primary === null) {
    sleep(1000);
  }
}
if (primary === null) {
  throw new Error("no primary elected within 120 s");
}
print(`primary: ${primary}`);

// Writes go to the primary: connect to it (it is mongo-1 unless mongo-1 is down).
const admin = new Mongo(`mongodb://${primary}/?directConnection=true`).getDB("admin");
admin.auth(process.env.MONGO_ROOT_USERNAME, process.env.MONGO_ROOT_PASSWORD);
const dbName = process.env.SKYHIVE_MONGODB_DB || "skyhive";
if (admin.getUser("skyhive") === null) {
  admin.createUser({
    user: "skyhive",
    pwd: process.env.MONGO_SKYHIVE_PASSWORD,
    roles: [{ role: "readWrite", db: dbName }],
  });
  print(`user skyhive created (readWrite on ${dbName})`);
} else {
  print("user skyhive exists");
}
