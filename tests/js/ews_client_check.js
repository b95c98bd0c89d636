#!/usr/bin/env node
// Drives Microsoft's EWS Managed API port (ews-javascript-api) against the EWS emulator, exactly as a Node user would.
//
// Usage: node ews_client_check.js <ews_url> <user> <password> [--impersonate ADDRESS] [--start ISO8601Z]
//
// Steps: bind the calendar, create an appointment, find it in a CalendarView, update it, delete it, then subscribe to
// streaming notifications and wait for one. Between steps the script prints a checkpoint line
// `{"checkpoint": NAME, ...}` and waits for one line on stdin, so the caller can inspect the emulator's state (and,
// at "subscribed", make the change that must be notified). The last line printed is `{"result": {...}}`; a failure
// prints `{"error": ...}` and exits 1.
"use strict";

const readline = require("readline");
const ews = require("ews-javascript-api");

const {
    Appointment, CalendarFolder, CalendarView, ConflictResolutionMode, ConnectingIdType, DateTime,
    DeleteMode, EventType, ExchangeService, ExchangeVersion, FolderId, ImpersonatedUserId, ItemId, MessageBody,
    SendCancellationsMode, SendInvitationsMode, SendInvitationsOrCancellationsMode, StreamingSubscriptionConnection,
    Uri, WebCredentials, WellKnownFolderName,
} = ews;

const STEP_TIMEOUT_MS = 20000;

function parseArgs(argv) {
    if (argv.length < 3) {
        throw new Error("usage: ews_client_check.js <ews_url> <user> <password> [--impersonate A] [--start ISO]");
    }
    const args = { url: argv[0], user: argv[1], password: argv[2], impersonate: null, start: null };
    for (let i = 3; i < argv.length; i += 2) {
        if (argv[i] === "--impersonate") args.impersonate = argv[i + 1];
        else if (argv[i] === "--start") args.start = argv[i + 1];
        else throw new Error(`unknown option ${argv[i]}`);
    }
    return args;
}

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

// One line from the caller per checkpoint: the caller inspects the emulator, then lets the script go on.
const stdinLines = readline.createInterface({ input: process.stdin });
const waiting = [];
const buffered = [];
stdinLines.on("line", (line) => (waiting.length ? waiting.shift()(line) : buffered.push(line)));

function checkpoint(name, data) {
    emit({ checkpoint: name, ...data });
    if (buffered.length) return Promise.resolve(buffered.shift());
    return withTimeout(new Promise((resolve) => waiting.push(resolve)), `the caller's go-ahead after ${name}`);
}

function withTimeout(promise, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function iso(dateTime) {
    // Seconds precision, UTC, as the emulator's control plane shows times.
    return dateTime.MomentDate.clone().utc().format("YYYY-MM-DDTHH:mm:ss[Z]");
}

function describeError(err) {
    if (!err) return "unknown error";
    const parts = [err.constructor && err.constructor.name, err.message || String(err)];
    if (err.ErrorCode !== undefined) parts.push(`ErrorCode=${err.ErrorCode}`);
    if (err.Response && err.Response.ErrorMessage) parts.push(err.Response.ErrorMessage);
    if (err.InnerException) parts.push(`inner: ${describeError(err.InnerException)}`);
    return parts.filter(Boolean).join(" | ");
}

let partial = null;

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const service = new ExchangeService(ExchangeVersion.Exchange2016);
    service.Credentials = new WebCredentials(args.user, args.password);
    service.Url = new Uri(args.url);
    if (args.impersonate) {
        service.ImpersonatedUserId = new ImpersonatedUserId(ConnectingIdType.SmtpAddress, args.impersonate);
    }
    const result = {};
    partial = result;

    // 1. Bind the calendar.
    const calendar = await CalendarFolder.Bind(service, WellKnownFolderName.Calendar);
    result.calendar = { display_name: calendar.DisplayName, id: calendar.Id.UniqueId };

    // 2. Create an appointment.
    const start = args.start ? DateTime.Parse(args.start) : DateTime.Now.AddHours(24);
    const end = start.AddHours(1);
    const appointment = new Appointment(service);
    appointment.Subject = "JS client check";
    appointment.Body = new MessageBody("Created by ews-javascript-api");
    appointment.Location = "Room 1";
    appointment.Start = start;
    appointment.End = end;
    await appointment.Save(WellKnownFolderName.Calendar, SendInvitationsMode.SendToNone);
    const itemId = appointment.Id.UniqueId;
    result.created = { id: itemId, start: iso(start), end: iso(end) };
    await checkpoint("created", result.created);

    // 3. Find it in a CalendarView of that day.
    const dayStart = new DateTime(start.MomentDate.clone().utc().startOf("day"));
    const view = new CalendarView(dayStart, dayStart.AddHours(24));
    const found = await service.FindAppointments(WellKnownFolderName.Calendar, view);
    result.found = found.Items.map((a) => ({ id: a.Id.UniqueId, subject: a.Subject, start: iso(a.Start), end: iso(a.End) }));

    // 4. Update it: new subject, half an hour longer.
    const bound = await Appointment.Bind(service, new ItemId(itemId));
    const newEnd = end.AddMinutes(30);
    bound.Subject = "JS client check (updated)";
    bound.End = newEnd;
    await bound.Update(ConflictResolutionMode.AlwaysOverwrite, SendInvitationsOrCancellationsMode.SendToNone);
    result.updated = { id: bound.Id.UniqueId, subject: bound.Subject, end: iso(newEnd) };
    await checkpoint("updated", result.updated);

    // 5. Delete it.
    await bound.Delete(DeleteMode.HardDelete, SendCancellationsMode.SendToNone);
    result.deleted = { id: itemId };
    await checkpoint("deleted", result.deleted);

    // 6. Streaming: subscribe to the calendar, open one connection, wait for the change the caller makes.
    const subscription = await service.SubscribeToStreamingNotifications(
        [new FolderId(WellKnownFolderName.Calendar)],
        EventType.Created, EventType.Modified, EventType.Deleted, EventType.Moved,
    );
    const connection = new StreamingSubscriptionConnection(service, 1);
    connection.AddSubscription(subscription);
    const received = [];
    const notified = new Promise((resolve, reject) => {
        connection.OnNotificationEvent.push((sender, eventArgs) => {
            for (const event of eventArgs.Events) {
                received.push({ type: EventType[event.EventType], item_id: event.ItemId ? event.ItemId.UniqueId : null });
            }
            if (received.some((e) => e.type === "Created")) resolve();
        });
        connection.OnSubscriptionError.push((sender, eventArgs) => reject(eventArgs.Exception || new Error("subscription error")));
        connection.OnDisconnect.push((sender, eventArgs) => {
            if (eventArgs.Exception) reject(eventArgs.Exception);
        });
    });
    notified.catch(() => {}); // inspected below; avoids an unhandled rejection while the caller acts
    // IsOpen turns true with the stream's first envelope (a heartbeat). OnResponseHeader would be the natural signal,
    // but @ewsjs/xhr listens for "response" on the body stream after axios has resolved, so it never fires.
    const connected = new Promise((resolve) => {
        const poll = setInterval(() => {
            if (connection.IsOpen) {
                clearInterval(poll);
                resolve();
            }
        }, 20);
    });
    const opened = connection.Open();
    // Open() only settles when the hanging request fails; surface that instead of a silent timeout.
    const failed = new Promise((_, reject) => opened.catch(reject));
    failed.catch(() => {});
    await withTimeout(Promise.race([connected, failed]), "the first GetStreamingEvents envelope");
    await checkpoint("subscribed", { subscription_id: subscription.Id });
    await withTimeout(Promise.race([notified, failed]), "a streaming notification");
    result.notifications = received;
    result.subscription_id = subscription.Id;
    try {
        connection.Close();
    } catch (err) {
        // Already closed by the server: nothing to release.
    }
    emit({ result });
}

// ews-javascript-api's streaming request leaves a rejected promise unhandled when the server answers with an HTTP
// error (e.g. a SOAP fault, status 500): report it as this script's failure instead of a bare crash.
process.on("unhandledRejection", (err) => {
    const status = err && err.response ? ` (HTTP ${err.response.status})` : "";
    emit({ error: `unhandled rejection${status}: ${describeError(err)}`, partial });
    process.exit(1);
});

main().then(
    () => process.exit(0),
    (err) => {
        emit({ error: describeError(err), partial });
        process.exit(1);
    },
);
